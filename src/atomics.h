/* Atomics on words in shared memory, for the portable code.  <stdatomic.h>
 * is not available in MSVC's C mode, and _Atomic objects cannot be placed in
 * memory another process maps anyway: these act on plain aligned words.
 * Every operation is sequentially consistent unless its name says relaxed. */
#ifndef MPROC_ATOMICS_H
#define MPROC_ATOMICS_H

#include <stdint.h>

/* The type of a 64-bit word that the mproc__*64 operations act on, in every
 * struct that holds one: 8-aligned on every ABI (see below, i386). */
#if defined(_MSC_VER) && !defined(__clang__)
typedef uint64_t mproc__u64a; /* MSVC aligns 8-byte types to 8 already */
#else
typedef uint64_t mproc__u64a __attribute__((aligned(8)));
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>

static __inline uint32_t mproc__load32(volatile uint32_t *p) {
  return (uint32_t)_InterlockedOr((volatile long *)p, 0);
}
static __inline void mproc__store32(volatile uint32_t *p, uint32_t v) {
  (void)_InterlockedExchange((volatile long *)p, (long)v);
}
static __inline uint32_t mproc__xchg32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)_InterlockedExchange((volatile long *)p, (long)v);
}
/* Returns 1 and stores `desired` if *p == *expected; else 0 and updates
 * *expected with the value seen. */
static __inline int mproc__cas32(volatile uint32_t *p, uint32_t *expected,
                                 uint32_t desired) {
  uint32_t seen = (uint32_t)_InterlockedCompareExchange(
      (volatile long *)p, (long)desired, (long)*expected);
  if (seen == *expected)
    return 1;
  *expected = seen;
  return 0;
}
static __inline uint32_t mproc__add32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)_InterlockedExchangeAdd((volatile long *)p, (long)v);
}
static __inline int mproc__cas64(volatile uint64_t *p, uint64_t *expected,
                                 uint64_t desired) {
  uint64_t seen = (uint64_t)_InterlockedCompareExchange64(
      (volatile long long *)p, (long long)desired, (long long)*expected);
  if (seen == *expected)
    return 1;
  *expected = seen;
  return 0;
}
#if defined(_M_IX86)
/* _InterlockedOr64, _InterlockedExchange64 and _InterlockedExchangeAdd64 are
 * x64/ARM intrinsics only ("Architecture: x64" in Microsoft's compiler
 * intrinsics reference); 32-bit x86 has CMPXCHG8B, which
 * _InterlockedCompareExchange64 exposes, so the others are CAS loops. */
static __inline uint64_t mproc__load64(volatile uint64_t *p) {
  /* A CAS that stores what it found is an atomic 8-byte read on x86-32,
   * where two 4-byte loads could tear. */
  return (uint64_t)_InterlockedCompareExchange64((volatile long long *)p, 0, 0);
}
static __inline void mproc__store64(volatile uint64_t *p, uint64_t v) {
  uint64_t seen = mproc__load64(p);
  while (!mproc__cas64(p, &seen, v))
    ;
}
static __inline uint64_t mproc__add64(volatile uint64_t *p, uint64_t v) {
  uint64_t seen = mproc__load64(p);
  while (!mproc__cas64(p, &seen, seen + v))
    ;
  return seen;
}
#else
static __inline uint64_t mproc__load64(volatile uint64_t *p) {
  return (uint64_t)_InterlockedOr64((volatile long long *)p, 0);
}
static __inline void mproc__store64(volatile uint64_t *p, uint64_t v) {
  (void)_InterlockedExchange64((volatile long long *)p, (long long)v);
}
static __inline uint64_t mproc__add64(volatile uint64_t *p, uint64_t v) {
  return (uint64_t)_InterlockedExchangeAdd64((volatile long long *)p,
                                             (long long)v);
}
#endif
#if defined(_M_IX86) || defined(_M_X64)
#define mproc__pause() _mm_pause()
#else
/* ARM64 has no _mm_pause; YieldProcessor (winnt.h) is the documented spin
 * hint on every architecture, but this header must not pull in windows.h:
 * __yield() is the ARM intrinsic it expands to. */
#define mproc__pause() __yield()
#endif
#else
#define mproc__load32(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define mproc__store32(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define mproc__xchg32(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define mproc__cas32(p, e, d)                                                  \
  __atomic_compare_exchange_n((p), (e), (d), 0, __ATOMIC_SEQ_CST,              \
                              __ATOMIC_SEQ_CST)
#define mproc__add32(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
/* The 64-bit words live in shared memory, so the operations on them must be
 * done by the CPU: an out-of-line libatomic call (armel, mipsel, 32-bit
 * PowerPC) takes a lock private to one process and is not atomic across
 * processes at all.  Refuse such targets at build time (the macro is 2
 * when 8-byte atomics are always lock-free; gcc and clang define it). */
#if defined(__GCC_ATOMIC_LLONG_LOCK_FREE) && __GCC_ATOMIC_LLONG_LOCK_FREE != 2
#error "mproc needs lock-free 64-bit atomics (not armel, mipsel, ppc32)"
#endif
/* i386's ABI aligns uint64_t to 4 bytes, and a compiler that cannot prove a
 * pointer 8-aligned makes the same out-of-line call (clang: "misaligned
 * atomic operation").  Every struct declares its 64-bit words mproc__u64a,
 * 8-aligned on every ABI (and segments are page-aligned): the cast tells
 * the compiler so, and debug builds check it at run time. */
#ifndef NDEBUG
static inline volatile mproc__u64a *mproc__a64(volatile uint64_t *p) {
  if (((uintptr_t)p & 7u) != 0)
    __builtin_trap(); /* a shared 64-bit word that is not 8-aligned */
  return (volatile mproc__u64a *)p;
}
#define MPROC__A64(p) mproc__a64(p)
#else
#define MPROC__A64(p) ((volatile mproc__u64a *)(p))
#endif
#define mproc__load64(p) __atomic_load_n(MPROC__A64(p), __ATOMIC_SEQ_CST)
#define mproc__store64(p, v)                                                   \
  __atomic_store_n(MPROC__A64(p), (v), __ATOMIC_SEQ_CST)
#define mproc__add64(p, v)                                                     \
  __atomic_fetch_add(MPROC__A64(p), (v), __ATOMIC_SEQ_CST)
#define mproc__cas64(p, e, d)                                                  \
  __atomic_compare_exchange_n(MPROC__A64(p), (e), (d), 0, __ATOMIC_SEQ_CST,    \
                              __ATOMIC_SEQ_CST)
#if defined(__x86_64__) || defined(__i386__)
#define mproc__pause() __builtin_ia32_pause()
#else
#define mproc__pause() ((void)0)
#endif
#endif

#endif
