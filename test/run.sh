#!/bin/sh
# Runs the test suite with node's test runner (via tsx). Usage: npm test [-- <dir-or-file> ...]
# Default: every test/**/*.test.ts. Integration tests start (or reuse) a real Kafka broker.
set -e
if [ "$#" -eq 0 ]; then set -- test; fi
files=$(find "$@" -name '*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec $files
