#!/bin/bash
# Timing helpers shared by the three scripts: run NAME BINARY, with the pausing of other builds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run baseline_1 "$BASE"
run head_1 "$HEAD"
run baseline_2 "$BASE"
run head_2 "$HEAD"
