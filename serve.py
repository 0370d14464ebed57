"""The dashboard with its security headers (abcweb/web/security.py) and its static files
gzipped (abcweb/web/compression.py):

    streamlit run serve.py          # takes the same --server.* flags as streamlit_app.py

Streamlit has no setting for response headers or compression; `st.App`, its documented ASGI
entry point, takes middleware, and `streamlit run` serves an st.App it finds in a script.
`streamlit run streamlit_app.py` still works, without either.
"""

import streamlit as st
from starlette.middleware import Middleware

from abcweb.web.compression import GzipStatic
from abcweb.web.security import SecurityHeaders

# The first is the outermost: the headers go on every response, compressed or not.
app = st.App("streamlit_app.py", middleware=[Middleware(SecurityHeaders),
                                              Middleware(GzipStatic)])
