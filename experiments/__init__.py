"""absl entry points: self-play, evaluation, benchmarks."""
