"""The dashboard's views as Panel components, each handed the read-only Store, and how live
changes reach them on a browser session (`live`). Pages (dashboard.pages) compose them."""

#: The largest page or line number a view takes (from a URL, say): the browser holds numbers
#: exactly up to 2**53, and Bokeh cannot send a Python int past 64 bits at all (an OverflowError,
#: a blank page).
MAX_NUMBER = 10**15
