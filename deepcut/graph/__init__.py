"""Step 3 of the flow: patch features become a graph.

:class:`.patch_graph.PatchGraph` holds the NCut / CC affinity of a set of patches, dense, compact
(:mod:`.large`, float16 every pair) or sparse k-NN; :func:`.patch_graph.graph_of` is the one place an
image's features become its graph. :mod:`.gcn` holds the GCN's degree rule; the normalized-cut scores
are in :mod:`.patch_graph`.
"""
