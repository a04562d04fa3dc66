// ringctl persistent loop, part 1: what both compilers need before the records and the
// handler. One source for the GPU (CUDA C++ through NVRTC or nvcc) and its CPU twin (the
// host C++ compiler): only the shared-word primitives differ. Every shared word is an
// aligned 64-bit integer read with an acquire load and written with a release store, so
// a record's bytes are visible before the index that publishes it, and no poll is
// hoisted out of a loop; words a later release store publishes are stored relaxed. The RC_* word indices are generated from layout.py.
typedef long long rc_word;

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define RINGCTL_DEVICE __device__ __forceinline__
#define RINGCTL_ENTRY extern "C" __global__ void
static __device__ __forceinline__ rc_word rc_load(const rc_word* p) {
  rc_word v;
  asm volatile("ld.acquire.sys.b64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
static __device__ __forceinline__ void rc_store(rc_word* p, rc_word v) {
  asm volatile("st.release.sys.b64 [%0], %1;" : : "l"(p), "l"(v) : "memory");
}
// For words a later release store publishes (counters, the record position, the
// heartbeat): a strong store the loop cannot drop or cache, without a fence of its own.
static __device__ __forceinline__ void rc_store_relaxed(rc_word* p, rc_word v) {
  asm volatile("st.relaxed.sys.b64 [%0], %1;" : : "l"(p), "l"(v) : "memory");
}
static __device__ __forceinline__ void rc_relax() {}
static __device__ __forceinline__ void rc_nap(rc_word us) {
  // __nanosleep takes at most about a millisecond; longer naps are a few of them.
  for (rc_word left = us; left > 0; left -= 1000) {
    __nanosleep((unsigned)((left < 1000 ? left : 1000) * 1000));
  }
}
#define RC_ONE_THREAD if (threadIdx.x != 0 || blockIdx.x != 0) return
#else
#include <math.h>
#include <unistd.h>
#define RINGCTL_DEVICE static inline
#define RINGCTL_ENTRY extern "C" __attribute__((visibility("default"))) void
static inline rc_word rc_load(const rc_word* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void rc_store(rc_word* p, rc_word v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rc_store_relaxed(rc_word* p, rc_word v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void rc_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
static inline void rc_nap(rc_word us) { usleep((useconds_t)us); }
#define RC_ONE_THREAD
#endif
