"""What the method did, shown: the computations behind the teaching views (:mod:`.explanation`).
They work on a :class:`~deepcut.features.store.FeatureStore` and a :class:`~deepcut.segmentation.result.Segmentation`,
so a script or the command line gets them as the app does; :mod:`deepcut.render` draws them.
"""
