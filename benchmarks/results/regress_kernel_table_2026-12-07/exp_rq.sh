#!/bin/bash
# Timing helpers shared by the three scripts: run NAME BINARY, with the pausing of other builds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"




# Attribution experiment (RQ beam 5): EXP = HEAD with rq_beam_step calling the same
# NearestCentroidKernels::offer_smallest template inline (xsimd::default_arch, this TU's
# -O3 -march=native) instead of ops::offer_smallest -> kernel table. Built from a throw-away worktree.
EXP=/work/wt-exp/build-regress/recblocks_bench
run exp_baseline_1 "$BASE"
run exp_head_1 "$HEAD"
run exp_inline_1 "$EXP"
run exp_baseline_2 "$BASE"
run exp_head_2 "$HEAD"
run exp_inline_2 "$EXP"
