#!/usr/bin/env bash
# Reproduces docs/results.md: every task, DeepCut (NCut, CC) against spectral clustering and k-means on
# identical features. Run from the repository root:
#     bash docs/results/run.sh                                  # colour backbone (no weights needed)
#     BACKBONE=dino_vits8 OUT=docs/results/dino bash docs/results/run.sh   # with DINO weights
# DATA points at the evaluation data (default ../shared/data); ONLY=<dataset> runs one dataset.
set -euo pipefail
DATA=${DATA:-../shared/data}
BACKBONE=${BACKBONE:-color}
OUT=${OUT:-docs/results}
mkdir -p "$OUT"

run() {  # run DATASET TASK [extra flags...]: the four methods on one dataset
    local name=$1 task=$2; shift 2
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return; fi
    python -m deepcut eval "$DATA/$name" --task "$task" --backbone "$BACKBONE" "$@" --out "$OUT/${name}_deepcut_ncut.json"
    python -m deepcut eval "$DATA/$name" --task "$task" --backbone "$BACKBONE" "$@" --loss cc --out "$OUT/${name}_deepcut_cc.json"
    python -m deepcut eval "$DATA/$name" --task "$task" --backbone "$BACKBONE" "$@" --method spectral --out "$OUT/${name}_spectral.json"
    python -m deepcut eval "$DATA/$name" --task "$task" --backbone "$BACKBONE" "$@" --method kmeans --out "$OUT/${name}_kmeans.json"
}

run weizmann_horse single
run grabcut single
run coco128_seg corloc --largest-component
run davis2016 video
if [ -z "${ONLY:-}" ] || [ "$ONLY" = davis2016 ]; then  # the GNN carried from frame to frame
    python -m deepcut eval "$DATA/davis2016" --task video --video-mode temporal --backbone "$BACKBONE" \
        --out "$OUT/davis2016_deepcut_ncut_temporal.json"
fi
run cub_parts_tiny parts
if [ -z "${ONLY:-}" ] || [ "$ONLY" = objects ]; then  # several objects per image (see docs/results.md)
    for n in 1 3 auto; do  # file names as docs/results.md cites them, e.g. coco128_seg_objects1_color_deepcut.json
        one=$([ "$n" = 1 ] && echo 1 || echo ""); auto=$([ "$n" = auto ] && echo _auto || echo "")
        for method in deepcut spectral; do
            python -m deepcut eval "$DATA/coco128_seg" --task objects --objects "$n" --backbone "$BACKBONE" \
                --method "$method" --quiet --out "$OUT/coco128_seg_objects${one}_${BACKBONE}_${method}${auto}.json"
        done
    done
fi

python -m deepcut.evaluation.report "$OUT"/*.json --commands --compare --figure "$OUT/iou_distributions.png"
