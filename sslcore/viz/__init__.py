"""Visualisations: MAE reconstructions, DINO attention, projections and figure builders."""
