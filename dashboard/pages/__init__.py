"""The dashboard's pages: thin compositions of components, one module per URL."""
