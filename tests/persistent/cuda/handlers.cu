// C++ handlers the tests launch, on the CPU twin and on the GPU.

RINGCTL_DEVICE int double_value(const In& rec, Out& out, double* state) {
  out.seq = rec.seq;
  out.value = rec.value * 2.0;
  return 1;
}

// Emits even sequence numbers, rejects negative values (counted as errors).
RINGCTL_DEVICE int keep_even(const In& rec, Out& out, double* state) {
  if (rec.value < 0) return -1;
  if (rec.seq % 2 != 0) return 0;
  out.seq = rec.seq;
  out.value = rec.value;
  return 1;
}

// Loops for ever on a record whose value is -7 (as a buggy handler would).
RINGCTL_DEVICE int wedge_on_magic(const In& rec, Out& out, double* state) {
  volatile double x = rec.value;
  while (x == -7.0) x = rec.value;
  out.seq = rec.seq;
  out.value = x;
  return 1;
}
