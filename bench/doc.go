// Package bench holds nubis's performance benchmarks. Run them all with one command:
//
//	make bench
//
// which is go test -run='^$' -bench=. -benchtime=2000x -count=1 ./bench.
//
// Each benchmark starts a real server in-process (internal/server/servertest), makes its calls
// sequentially over a single keep-alive connection (and fails if a second one was opened), times
// every call, and reports its p50, p99, maximum and mean latency in milliseconds as the metrics
// p50-ms, p99-ms, max-ms and mean-ms. BenchmarkBaselineHealth, an unsigned GET of the health
// endpoint that touches no store, is the baseline measured in the same run: the cost of the HTTP
// round trip alone.
//
// Performance targets live here, never in timed tests, and are reported rather than asserted:
// after the benchmarks, the run prints each benchmark that has a target in [targets] beside its
// target and the baseline. A benchmark added by a later issue goes beside the others, with its
// target added to that list.
package bench
