"""Step 6 of the flow: patch labels become a :class:`.result.Segmentation` at the input's size.

:func:`.finish.to_segmentation` upsamples and refines (:mod:`.refine`: guided filter, dense CRF) and
finds the mask and box; :mod:`.colors` draws labels, overlays and boxes.
"""
