"""Streamlit building blocks shared by the pages: cached resources, forms, live panels."""
