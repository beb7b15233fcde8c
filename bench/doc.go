// Package bench holds nubis's performance benchmarks. Run them all with one command:
//
//	make bench
//
// which is go test -run='^$' -bench=. -benchtime=2000x -count=1 ./bench.
//
// Each latency benchmark starts a real server in-process (internal/server/servertest), makes its calls
// sequentially over a single keep-alive connection (and fails if a second one was opened), times
// every call, and reports its p50, p99, maximum and mean latency in milliseconds as the metrics
// p50-ms, p99-ms, max-ms and mean-ms. BenchmarkBaselineHealth, an unsigned GET of the health
// endpoint that touches no store, is the baseline measured in the same run: the cost of the HTTP
// round trip alone.
//
// The Lambda benchmarks (lambda_test.go, phases_test.go, rie_test.go) run a Python function that
// returns its event, in runc sandboxes, so they need root and runc (make deps installs it) and skip
// without them. BenchmarkInvokeWarm times warm invocations as above. The others do a fixed amount
// of work whatever -benchtime says, so that the whole run stays around a minute:
// BenchmarkColdStart makes 20 cold starts (fresh functions) and reports their latency and the
// Init Duration of their REPORT lines, BenchmarkColdStartPhases times the steps of a cold start one
// by one (network namespace, runc create, runc start, the runtime's init, the first invocation) and
// prints a table of them after the run, and BenchmarkThroughput has 16 clients invoke at once for
// 5 s (at most 20,000 invocations) and reports invocations/s and errors. Their iteration count is
// not their work's: the metrics cold-starts and invocations are. Each is measured with the default
// 128 MB of memory (so 128/1769 of a vCPU per environment) and with 1769 MB (one vCPU).
//
// The benchmarks ending in RIE do the same work with AWS's Lambda Runtime Interface Emulator in
// place of nubis: the same handler and runtime client (runtimes/python/bootstrap.py) under the
// host's python3, unsandboxed, on loopback. They build aws-lambda-rie with `go install` from the
// Go module proxy (or the module cache) into a temporary directory, and skip if they cannot.
//
// BenchmarkAPIGatewayOverhead times calculate_mean invoked directly and through its HTTP API,
// interleaved over one kept-alive connection each: API Gateway's overhead is the API's p50 minus
// Invoke's. BenchmarkAPIGatewayLoad runs `wrk -t2 -c32 -d5s` against the route (it needs wrk,
// which make deps installs), the same load from 32 Go clients, and 32 SDK clients invoking
// directly. The whole `make bench` run takes about a minute and a half.
//
// Performance targets live here, never in timed tests, and are reported rather than asserted:
// after the benchmarks, the run prints each benchmark that has a target in [targets] beside its
// target and the baseline. A benchmark added by a later issue goes beside the others, with its
// target added to that list.
package bench
