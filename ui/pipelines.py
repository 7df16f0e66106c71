"""A method's own view pipelines, for the augmentation preview."""

from __future__ import annotations

import streamlit as st

from sslcore.augment import BatchViews
from sslcore.methods import create_method
from sslcore.models import create_backbone


@st.cache_resource(max_entries=8)
def method_pipelines(method: str, image_size: int) -> tuple[BatchViews, BatchViews]:
    """The first two view pipelines the method trains with (the very objects, not copies)."""
    views = create_method(method, create_backbone("convnet", image_size), image_size).view_pipelines()
    return views[0], views[-1] if len(views) > 1 else views[0]
