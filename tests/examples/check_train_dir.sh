#!/bin/sh
# The sasrec program's --train_dir run folder, as pmixer/SASRec.pytorch's main.py writes it:
# <dataset>_<train_dir>/args.txt (every flag, "name,value", sorted), log.txt (a header, then
# "epoch (val_ndcg, val_hr) (test_ndcg, test_hr)" per validation) and a checkpoint of every new
# best and of the last epoch; and the final test is the best epoch's (the test metrics log.txt
# shows for that epoch).
# usage: check_train_dir.sh SASREC_PROGRAM DATASET   (run in a scratch folder)
set -eu
program=$1
dataset=$2
fail() { echo "check_train_dir: FAIL: $*"; exit 1; }
tail_name=lr=0.001.layer=2.head=1.hidden=16.maxlen=20.safetensors

# run NAME EXTRA_FLAGS...: trains 3 epochs or fewer into ratings_NAME; sets $out and $dir.
run() {
    dir=ratings_$1
    shift
    rm -rf "$dir"
    out=$("$program" --dataset "$dataset" --maxlen 20 --hidden_units 16 --eval_every 1 --threads 2 \
          --train_dir "${dir#ratings_}" "$@")
    echo "$out"
    [ -f "$dir/args.txt" ] || fail "no $dir/args.txt"
    [ "$(head -n 1 "$dir/log.txt")" = "epoch (val_ndcg, val_hr) (test_ndcg, test_hr)" ] || fail "$dir/log.txt header"
}

# the final JSON's NDCG@10 equals log.txt's test NDCG@10 of epoch $1
final_is_test_of() {
    logged=$(awk -v e="$1" 'NR > 1 { gsub(/[(),]/, " "); if ($1 == e) print $4 }' "$dir/log.txt")
    [ -n "$logged" ] || fail "log.txt has no line for epoch $1"
    final=$(echo "$out" | tail -n 1 | sed 's/.*"NDCG@10": \([0-9.]*\).*/\1/')
    awk -v a="$final" -v b="$logged" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 2e-6) }' ||
        fail "final NDCG@10 $final is not epoch $1's test NDCG@10 $logged"
}

# 1. Three epochs: args.txt, one log line per epoch, the best by validation NDCG@10 is tested.
run ctest --num_epochs 3
grep -qx 'train_dir,ctest' "$dir/args.txt" || fail "args.txt has no 'train_dir,ctest'"
grep -qx 'maxlen,20' "$dir/args.txt" || fail "args.txt has no 'maxlen,20'"
grep -qx 'lr,0.001' "$dir/args.txt" || fail "args.txt has no default 'lr,0.001'"
grep -qx 'load,None' "$dir/args.txt" || fail "args.txt has no 'load,None'"
LC_ALL=C sort -c "$dir/args.txt" || fail "args.txt is not sorted"
[ "$(wc -l < "$dir/log.txt")" -eq 4 ] || fail "log.txt should have a header and 3 lines"
[ -f "$dir/SASRec.epoch=3.$tail_name" ] || fail "no checkpoint of the last epoch"
best=$(awk 'NR > 1 { gsub(/[(),]/, " "); if (NR == 2 || $2 > b) { b = $2; e = $1 } } END { print e }' "$dir/log.txt")
[ -f "$dir/SASRec.epoch=$best.$tail_name" ] || fail "no checkpoint of the best epoch $best"
echo "$out" | grep -q "the test uses the best checkpoint: epoch $best," || fail "the final test is not of epoch $best"
final_is_test_of "$best"

# 2. No epoch can beat the first by more than 1: patience 2 stops after epoch 3, and the final
#    test puts epoch 1's weights back.
run ctest_stop --num_epochs 5 --patience 2 --min_delta 1
[ "$(wc -l < "$dir/log.txt")" -eq 4 ] || fail "stopped run: log.txt should have a header and 3 lines"
echo "$out" | grep -q "stopped early after epoch 3: 2 validations in a row" || fail "no early stop after epoch 3"
echo "$out" | grep -q "the test uses the best checkpoint: epoch 1," || fail "the final test is not of epoch 1"
[ -f "$dir/SASRec.epoch=1.$tail_name" ] || fail "no checkpoint of the best epoch 1"
[ -f "$dir/SASRec.epoch=3.$tail_name" ] || fail "no checkpoint of the last epoch 3"
[ ! -f "$dir/SASRec.epoch=2.$tail_name" ] || fail "a checkpoint of epoch 2, which did not improve"
final_is_test_of 1
echo "check_train_dir: PASS"
