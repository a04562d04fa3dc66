// A persistent kernel's handler in CUDA C++: the EWMA z-score of each reading against
// its channel's estimate from before it, emitting only the readings with |z| above the
// threshold. Declared in kernels/native_records.py (native_kernel), which generates `In`
// and `Out` from the SAMPLE dtype (fields seq, channel, value, z).
//
// state[0] alpha, state[1] warmup (samples per channel before z is reported),
// state[2] threshold, then (mean, variance, count) per channel from state[3] on.

RINGCTL_DEVICE int zscore(const In& rec, Out& out, double* state) {
  const double alpha = state[0];
  double* ch = state + 3 + 3 * rec.channel;
  const double mean = ch[0], var = ch[1], n = ch[2];
  double z = 0.0;
  if (n >= state[1] && var > 0.0) z = (rec.value - mean) / sqrt(var);
  if (n == 0.0) {
    ch[0] = rec.value;
  } else {
    const double d = rec.value - mean;
    ch[0] = mean + alpha * d;
    ch[1] = (1.0 - alpha) * (var + alpha * d * d);
  }
  ch[2] = n + 1.0;
  if (fabs(z) <= state[2]) return 0;  // nothing out
  out.seq = rec.seq;
  out.channel = rec.channel;
  out.value = rec.value;
  out.z = z;
  return 1;  // emit `out`
}
