"""Step 4 of the flow: a graph is clustered.

The per-image GNN (:mod:`.gnn`) and its losses (:mod:`.losses`), trained by :func:`.fit.fit` (with NCut's
restart from the spectral cut, :mod:`.spectral`); link constraints from corrections (:mod:`.links`);
what a clustering returns and what the stages call (:mod:`.result`).
"""
