"""sslcore: the engine of SSL Lab. Data, augmentation, methods, training, runs and evaluation.

Importable and testable without Streamlit; the app in ``app.py``/``pages``/``ui`` is a thin face on it.
"""

__version__ = "0.1.0"
