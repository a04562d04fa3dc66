// A handler with a mistake on line 4.
RINGCTL_DEVICE int broken(const In& rec, Out& out, double* state) {
  out.seq = rec.seq;
  out.value = rec.no_such_field;
  return 1;
}
