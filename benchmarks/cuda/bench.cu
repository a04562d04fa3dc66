// Handlers for gpu_persistent.py (declared in native_kernels.py).

RINGCTL_DEVICE int echo(const In& rec, Out& out, double* state) {
  out.seq = rec.seq;
  out.value = rec.value * 2.0;
  return 1;
}

// Loops for ever on a record whose value is -7: a wedged kernel to force-stop.
RINGCTL_DEVICE int wedge(const In& rec, Out& out, double* state) {
  volatile double x = rec.value;
  while (x == -7.0) x = rec.value;
  out.seq = rec.seq;
  out.value = x;
  return 1;
}
