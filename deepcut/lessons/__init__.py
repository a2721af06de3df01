"""What the method did, shown: the lessons a teacher gives with DeepCut, usable from a script, the command line
(``deepcut slides``) and the app alike. They work on a :class:`~deepcut.features.store.FeatureStore` and a
:class:`~deepcut.segmentation.result.Segmentation` (a :class:`~.result.LessonResult`); :mod:`deepcut.render`
draws them.

* :mod:`.cuts`, :mod:`.replay`, :mod:`.pca`, :mod:`.picking` — the computations: the GNN's cut against the
  spectral one, the training replayed, the features' principal components, a clicked segment as the object;
* :mod:`.explain` — :func:`~.explain.explain`: those for one result, with their pictures and words;
* :mod:`.affinity` — one patch's row of the graph, drawn and put in words;
* :mod:`.words`, :mod:`.names` — a result's settings in words and in file names;
* :mod:`.compare`, :mod:`.sweep` — two results side by side; one setting swept over several values;
* :mod:`.walkthrough` — the method on one image in five steps;
* :mod:`.slides` — every figure as a slide, the replay as GIF and MP4, one zip.

Example::

    from deepcut import DeepCut
    from deepcut.lessons.explain import explain
    from deepcut.lessons.result import LessonResult
    from deepcut.lessons.slides import export_files

    dc = DeepCut("color")
    seg = dc.segment("cat.jpg", stages=2, k=3)
    export_files(LessonResult.of(dc.store, seg), "lecture/", "cat.jpg", explain(dc.store, seg))
"""
