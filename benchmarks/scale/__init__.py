"""Scale benchmarks: ranking, fetching, sending and delivering at many subscribers."""
