"""What the steps combine into: several objects (:mod:`.discover`), several images with one GNN
(:mod:`.cosegment`), corrections by click (:mod:`.correct`), video and live streams (:mod:`.video`).
"""
