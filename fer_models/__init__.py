"""FER Studio's library: data, models, checkpoints, training and evaluation. Never imports streamlit."""
__version__ = "0.1.0"
