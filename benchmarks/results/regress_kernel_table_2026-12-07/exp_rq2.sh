#!/bin/bash
# Timing helpers shared by the three scripts: run NAME BINARY, with the pausing of other builds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"




# Attribution experiment 2 (RQ beam 5), four binaries alternating:
#   inline_offer: HEAD with rq_beam_step calling NearestCentroidKernels<xsimd::default_arch>::offer_smallest inline
#                 (same kernel template; no ops:: checks, no kernel-table call)
#   inline_both:  inline_offer + the per-beam ||residual||² also through the inline kernel template
#                 instead of squared_distance(be, ...) -> ops::squared_distances -> kernel table
EXP1=/tmp/recblocks_bench_exp_inline_offer
EXP2=/tmp/recblocks_bench_exp_inline_both
for i in 1 2; do
  run exp2_baseline_$i "$BASE"
  run exp2_head_$i "$HEAD"
  run exp2_inline_offer_$i "$EXP1"
  run exp2_inline_both_$i "$EXP2"
done
