// Package bench holds the switch benchmark behind "dmbench run" and
// "dmbench calibrate", shared with Go benchmarks: a seeded synthetic family
// generator (transformer-like fine-tunes of a base with per-task calibration
// statistics, cached between runs), switch traces (round-robin, uniform
// random, Markov from a transition matrix or a built-in driving schedule),
// the monolithic baselines (mono-dense and mono-sparse files read whole with
// the same O_DIRECT request size and parallelism as the differential
// loader), the differential strategies over package diffload (independent
// masks, aligned masks, aligned with prefetch), a forward-pass check after
// every switch, result tables (text, JSON, CSV), an SVG latency chart, a
// pprof profile of switch time per phase and layer, and the calibration of
// a platform profile.
package bench
