#!/usr/bin/env bash
set -u
out=/tmp/ab
workloads=(
  "conv2d(n=1,c=512,h=7,w=7,k=512,r=3,s=3,stride=1,pad=1)"
  "conv2d(n=1,c=256,h=14,w=14,k=256,r=3,s=3,stride=1,pad=1)"
  "matmul(m=128,n=768,k=3072)"
  "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)"
)
for seed in 1 2 3; do
  for i in "${!workloads[@]}"; do
    op=${workloads[$i]}
    for v in old new; do
      if [ $v = old ]; then k=/tmp/oldtree/build/bin/ktune; else k=/work/main/build/bin/ktune; fi
      KTUNE_CACHE_DIR=/tmp/ab/cache-$v $k tune --op "$op" --tuner xgb --seed $seed --db $out/$v-$seed-$i.db --trials 128 --threads 1 --no-seeds --final-top 0 --no-transfer --format json >> $out/$v.jsonl 2>>$out/log.txt
      echo "$v $seed $i done" >> $out/progress.txt
    done
  done
done
echo ALLDONE >> $out/progress.txt
