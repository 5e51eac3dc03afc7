"""The dashboard's views as Panel components, each handed the read-only Store, and how live
changes reach them on a browser session (`live`)."""
