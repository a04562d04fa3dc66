// A sink: no Out record, no output ring.

RINGCTL_DEVICE int total(const In& rec, double* state) {
  state[0] += rec.value;
  state[1] += 1.0;
  return 0;
}
