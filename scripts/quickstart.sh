#!/usr/bin/env bash
# Quick start: install dependencies, build, and tune a matmul and a ResNet-18
# conv2d on this CPU with the embedded default (local worker + ./ktune.db).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
trials=${KTUNE_TRIALS:-48}
./build/bin/ktune tune --trials "$trials" --db ktune.db \
  --op 'matmul(m=512,n=512,k=512)' \
  --op 'conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)'
./build/bin/ktune best --db ktune.db \
  --op 'matmul(m=512,n=512,k=512)' \
  --op 'conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1)'
