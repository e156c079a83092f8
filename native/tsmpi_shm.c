/*
 * tsmpi_shm: the little that Node cannot do for the shared-memory transport.
 *
 *  - map(name, bytes, create): a POSIX shared-memory segment as an ArrayBuffer. Created segments
 *    are private (O_EXCL, mode 0600) and fully reserved with posix_fallocate, so a /dev/shm too
 *    small for the job fails here with ENOSPC instead of a SIGBUS on first touch.
 *  - unlink(name): removes the segment's name (mappings stay valid).
 *  - wake(buffer, byteOffset): futex wake on a 32-bit word of a segment. Atomics.notify cannot
 *    do this: V8 keeps its waiter lists per process.
 *  - yieldCpu(): sched_yield, for spin loops that share a core with the ranks they wait for.
 *  - sleep(buffer, byteOffset, expected, micros): futex_wait on the JS thread itself, bounded: a
 *    wake-up costs one context switch instead of the waiter's three (thread, libuv, JS thread).
 *  - waiter(buffer, byteOffset, callback) / arm(waiter, expected) / close(waiter): a thread that
 *    sleeps in futex_wait while the word still holds `expected`, then calls `callback` on the JS
 *    thread through libuv. An armed waiter keeps the event loop alive; a disarmed one does not.
 *  - combine(op, out, a, b): out[i] = a[i] op b[i] for typed arrays of one class, vectorised by
 *    the compiler: in JavaScript this loop is ~1.8 ns an element, the largest cost of a large
 *    allreduce after the copies. Only where C gives the very bits JavaScript gives (see below);
 *    false otherwise, and the caller loops in JavaScript.
 *  - stream(dst, src): a copy past the cache (non-temporal stores).
 *  - fold(op, out, copy, ins): combine over p arrays in one pass, the result streamed past the
 *    cache and copied once more: a rank's share of a staged allreduce (src/board.ts).
 *
 * Everything else (rings, protocol, policy) is TypeScript: src/transport/native.ts is the only
 * importer of this file's binary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error(env, NULL, "tsmpi_shm: N-API call failed: " #call);   \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value throw_errno(napi_env env, const char* what, const char* name, int err) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s %s: %s", what, name, strerror(err));
  napi_value code, text, error;
  napi_create_string_utf8(env, err == ENOSPC ? "ENOSPC" : err == ENOENT ? "ENOENT" : err == EEXIST ? "EEXIST" : "ESHM", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_throw(env, error);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "tsmpi_shm: missing arguments");
    return 0;
  }
  return 1;
}

/* Reads `want` arguments, the first of them a segment name, into `name`; 0 (with a JS exception) otherwise. */
static int name_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, char name[256]) {
  if (!get_args(env, info, want, argv)) return 0;
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], name, 256, &len) != napi_ok || len >= 255) {
    napi_throw_type_error(env, NULL, "tsmpi_shm: a segment name must be a string of at most 254 bytes");
    return 0;
  }
  return 1;
}

static void unmap(napi_env env, void* data, void* hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* map(name: string, bytes: number, create: boolean): ArrayBuffer */
static napi_value Map(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[256];
  if (!name_args(env, info, 3, argv, name)) return NULL;
  int64_t bytes;
  CHECK(napi_get_value_int64(env, argv[1], &bytes));
  bool create;
  CHECK(napi_get_value_bool(env, argv[2], &create));
  if (bytes <= 0) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: segment size must be positive");
    return NULL;
  }
  int fd = shm_open(name, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
  if (fd < 0) return throw_errno(env, create ? "cannot create shared-memory segment" : "cannot open shared-memory segment", name, errno);
  if (create) {
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err != 0) {
      close(fd);
      shm_unlink(name);
      return throw_errno(env, "cannot reserve shared memory for segment", name, err);
    }
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < bytes) {
      close(fd);
      return throw_errno(env, "shared-memory segment is smaller than expected:", name, EINVAL);
    }
  }
  void* p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return throw_errno(env, "cannot map shared-memory segment", name, err);
  napi_value ab;
  CHECK(napi_create_external_arraybuffer(env, p, (size_t)bytes, unmap, (void*)(uintptr_t)bytes, &ab));
  return ab;
}

/* unlink(name: string): boolean (false when it was already gone) */
static napi_value Unlink(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[256];
  if (!name_args(env, info, 1, argv, name)) return NULL;
  napi_value out;
  CHECK(napi_get_boolean(env, shm_unlink(name) == 0, &out));
  return out;
}

static int32_t* word_at(napi_env env, napi_value buffer, napi_value offset) {
  void* data;
  size_t length;
  if (napi_get_arraybuffer_info(env, buffer, &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "tsmpi_shm: expected an ArrayBuffer");
    return NULL;
  }
  uint32_t at;
  if (napi_get_value_uint32(env, offset, &at) != napi_ok || at % 4 != 0 || (size_t)at + 4 > length) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: word offset out of range or unaligned");
    return NULL;
  }
  return (int32_t*)((char*)data + at);
}

static long futex(int32_t* addr, int op, int32_t val, const struct timespec* timeout) {
  /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
  return syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
}

/* wake(buffer: ArrayBuffer, byteOffset: number): void */
static napi_value Wake(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t* w = word_at(env, argv[0], argv[1]);
  if (!w) return NULL;
  futex(w, FUTEX_WAKE, INT_MAX, NULL);
  return NULL;
}

/* sleep(buffer, byteOffset, expected, micros): boolean — futex wait on the calling (JS) thread
 * while the word holds `expected`, for at most `micros`; false if the time ran out. */
static napi_value Sleep(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t* w = word_at(env, argv[0], argv[1]);
  if (!w) return NULL;
  int32_t expected;
  double micros;
  CHECK(napi_get_value_int32(env, argv[2], &expected));
  CHECK(napi_get_value_double(env, argv[3], &micros));
  if (!(micros > 0)) micros = 0;
  struct timespec t = {(time_t)(micros / 1e6), (long)((micros - 1e6 * (double)(time_t)(micros / 1e6)) * 1000)};
  long r = futex(w, FUTEX_WAIT, expected, &t);
  napi_value out;
  CHECK(napi_get_boolean(env, !(r == -1 && errno == ETIMEDOUT), &out));
  return out;
}

static napi_value YieldCpu(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  sched_yield();
  return NULL;
}

/* ---- waiter ------------------------------------------------------------------------------- */

typedef struct {
  int32_t* word;
  napi_ref buffer; /* keeps the mapping alive while the thread may touch it */
  napi_threadsafe_function tsfn;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int armed;
  int stop;
  int closed;
  int32_t expected;
} Waiter;

static void* waiter_main(void* arg) {
  Waiter* w = arg;
  /* A stop request cannot change the shared word, so the sleep is bounded and re-checked. */
  const struct timespec tick = {0, 100 * 1000 * 1000};
  for (;;) {
    pthread_mutex_lock(&w->lock);
    while (!w->armed && !w->stop) pthread_cond_wait(&w->cond, &w->lock);
    int stop = w->stop;
    int32_t expected = w->expected;
    pthread_mutex_unlock(&w->lock);
    if (stop) break;
    while (__atomic_load_n(w->word, __ATOMIC_SEQ_CST) == expected) {
      futex(w->word, FUTEX_WAIT, expected, &tick);
      pthread_mutex_lock(&w->lock);
      stop = w->stop;
      pthread_mutex_unlock(&w->lock);
      if (stop) break;
    }
    pthread_mutex_lock(&w->lock);
    w->armed = 0;
    stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    if (stop) break;
    napi_call_threadsafe_function(w->tsfn, NULL, napi_tsfn_nonblocking);
  }
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void* context, void* data) {
  (void)data;
  Waiter* w = context;
  if (env == NULL || w->closed) return;
  /* The wake-up has been delivered: an idle waiter must not keep the process alive. */
  napi_unref_threadsafe_function(env, w->tsfn);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, cb, 0, NULL, NULL);
}

static void waiter_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  Waiter* w = hint;
  /* Only reached once JS no longer holds the waiter and close() has joined the thread. */
  if (w->closed) free(w);
}

static void stop_thread(napi_env env, Waiter* w) {
  if (w->closed) return;
  pthread_mutex_lock(&w->lock);
  w->stop = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  futex(w->word, FUTEX_WAKE, INT_MAX, NULL);
  pthread_join(w->thread, NULL);
  w->closed = 1;
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
  napi_delete_reference(env, w->buffer);
}

/* waiter(buffer: ArrayBuffer, byteOffset: number, callback: () => void): external */
static napi_value WaiterNew(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t* word = word_at(env, argv[0], argv[1]);
  if (!word) return NULL;
  Waiter* w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "tsmpi_shm: out of memory");
    return NULL;
  }
  w->word = word;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  CHECK(napi_create_reference(env, argv[0], 1, &w->buffer));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "tsmpi-shm-waiter", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, w, call_js, &w->tsfn));
  CHECK(napi_unref_threadsafe_function(env, w->tsfn));
  if (pthread_create(&w->thread, NULL, waiter_main, w) != 0) {
    napi_throw_error(env, NULL, "tsmpi_shm: cannot start the waiter thread");
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, w, waiter_finalize, w, &ext));
  return ext;
}

/* Reads `want` arguments, the first of them a waiter; NULL (with a JS exception) otherwise. */
static Waiter* waiter_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  if (!get_args(env, info, want, argv)) return NULL;
  void* p;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "tsmpi_shm: expected a waiter");
    return NULL;
  }
  return p;
}

/* arm(waiter, expected: number): void — calls back once the word differs from `expected`. */
static napi_value WaiterArm(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Waiter* w = waiter_args(env, info, 2, argv);
  if (!w) return NULL;
  int32_t expected;
  CHECK(napi_get_value_int32(env, argv[1], &expected));
  if (w->closed) return NULL;
  CHECK(napi_ref_threadsafe_function(env, w->tsfn));
  pthread_mutex_lock(&w->lock);
  w->expected = expected;
  w->armed = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* close(waiter): void — stops and joins the thread; no callback runs afterwards. */
static napi_value WaiterClose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Waiter* w = waiter_args(env, info, 1, argv);
  if (!w) return NULL;
  stop_thread(env, w);
  return NULL;
}

/* ---- combine ------------------------------------------------------------------------------ */

/* Op codes, as src/transport/native.ts numbers them. */
enum { OP_SUM, OP_PROD, OP_MIN, OP_MAX, OP_LAND, OP_LOR, OP_BAND, OP_BOR, OP_BXOR };

/* The ops in JavaScript's terms (src/op.ts): min/max keep a NaN from either side, land/lor treat
 * NaN as false. Integer sums and products wrap (unsigned arithmetic, then the element type),
 * as JavaScript's exact result stored into the array does whenever that result is exact. */
#define LOOP(T, U, EXPR)                                                    \
  do {                                                                      \
    T* o = out;                                                             \
    const T* x = a;                                                         \
    const T* y = b;                                                         \
    for (size_t i = 0; i < n; i++) {                                        \
      T p = x[i], q = y[i];                                                 \
      o[i] = (EXPR);                                                        \
    }                                                                       \
  } while (0)
#define TRUTHY(v) ((v) == (v) && (v) != 0)

/* 1 when done, 0 when this class/op is left to JavaScript. */
#define INT_OPS(T, U, WITH_PROD)                                            \
  switch (op) {                                                             \
    case OP_SUM: LOOP(T, U, (T)((U)p + (U)q)); return 1;                    \
    case OP_PROD: if (!(WITH_PROD)) return 0; LOOP(T, U, (T)((U)p * (U)q)); return 1; \
    case OP_MIN: LOOP(T, U, p < q ? p : q); return 1;                       \
    case OP_MAX: LOOP(T, U, p > q ? p : q); return 1;                       \
    case OP_LAND: LOOP(T, U, (T)(p != 0 && q != 0)); return 1;              \
    case OP_LOR: LOOP(T, U, (T)(p != 0 || q != 0)); return 1;               \
    case OP_BAND: LOOP(T, U, (T)(p & q)); return 1;                         \
    case OP_BOR: LOOP(T, U, (T)(p | q)); return 1;                          \
    case OP_BXOR: LOOP(T, U, (T)(p ^ q)); return 1;                         \
    default: return 0;                                                      \
  }
/* Bitwise ops on floats go through ToInt32 in JavaScript: left to it. */
#define FLOAT_OPS(T)                                                        \
  switch (op) {                                                             \
    case OP_SUM: LOOP(T, T, p + q); return 1;                               \
    case OP_PROD: LOOP(T, T, p * q); return 1;                              \
    case OP_MIN: LOOP(T, T, p < q || p != p ? p : q); return 1;             \
    case OP_MAX: LOOP(T, T, p > q || p != p ? p : q); return 1;             \
    case OP_LAND: LOOP(T, T, (T)(TRUTHY(p) && TRUTHY(q))); return 1;        \
    case OP_LOR: LOOP(T, T, (T)(TRUTHY(p) || TRUTHY(q))); return 1;         \
    default: return 0;                                                      \
  }

__attribute__((target_clones("avx2", "default"))) static int combine_typed(int op, napi_typedarray_type type, void* out, const void* a, const void* b, size_t n) {
  switch (type) {
    /* Products of 8- and 16-bit values are exact in a double; of 32-bit ones not, so JavaScript's
     * rounded product would differ from C's wrapped one: left to JavaScript. */
    case napi_int8_array: INT_OPS(int8_t, uint32_t, 1)
    case napi_uint8_array: INT_OPS(uint8_t, uint32_t, 1)
    case napi_int16_array: INT_OPS(int16_t, uint32_t, 1)
    case napi_uint16_array: INT_OPS(uint16_t, uint32_t, 1)
    case napi_int32_array: INT_OPS(int32_t, uint32_t, 0)
    case napi_uint32_array: INT_OPS(uint32_t, uint32_t, 0)
    /* BigInt arithmetic is exact, then wrapped to 64 bits: as unsigned C arithmetic. */
    case napi_bigint64_array: INT_OPS(int64_t, uint64_t, 1)
    case napi_biguint64_array: INT_OPS(uint64_t, uint64_t, 1)
    case napi_float32_array: FLOAT_OPS(float)
    case napi_float64_array: FLOAT_OPS(double)
    default: return 0; /* Uint8ClampedArray clamps: left to JavaScript */
  }
}

/* A typed array argument: its type, length in elements and bytes, and data; 0 (with a JS
 * exception naming `fn`) if it is not one. */
typedef struct {
  napi_typedarray_type type;
  size_t length;
  size_t bytes;
  void* data;
} Typed;

static int typed_arg(napi_env env, napi_value v, const char* fn, Typed* t) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    char msg[96];
    snprintf(msg, sizeof msg, "tsmpi_shm: %s takes typed arrays", fn);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  if (napi_get_typedarray_info(env, v, &t->type, &t->length, &t->data, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "tsmpi_shm: N-API call failed: napi_get_typedarray_info");
    return 0;
  }
  static const size_t size[] = {
      [napi_int8_array] = 1, [napi_uint8_array] = 1, [napi_uint8_clamped_array] = 1, [napi_int16_array] = 2,
      [napi_uint16_array] = 2, [napi_int32_array] = 4, [napi_uint32_array] = 4, [napi_float32_array] = 4,
      [napi_float64_array] = 8, [napi_bigint64_array] = 8, [napi_biguint64_array] = 8,
  };
  t->bytes = t->length * (t->type < sizeof size / sizeof size[0] && size[t->type] ? size[t->type] : 1);
  return 1;
}

/* combine(op: number, out, a, b): boolean — out[i] = a[i] op b[i] over a's length, for typed
 * arrays of one class with out and b at least as long; false (nothing done) where JavaScript must
 * do it. out may be a or b (in place). */
static napi_value Combine(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t op;
  CHECK(napi_get_value_int32(env, argv[0], &op));
  Typed out, a, b;
  if (!typed_arg(env, argv[1], "combine", &out) || !typed_arg(env, argv[2], "combine", &a) || !typed_arg(env, argv[3], "combine", &b)) return NULL;
  if (out.type != a.type || a.type != b.type || out.length < a.length || b.length < a.length) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: combine takes arrays of one class, out and b at least as long as a");
    return NULL;
  }
  napi_value done;
  CHECK(napi_get_boolean(env, combine_typed(op, a.type, out.data, a.data, b.data, a.length), &done));
  return done;
}

/* ---- stream ------------------------------------------------------------------------------- */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Copies n bytes from s to d with stores that bypass the cache (non-temporal) where it can;
 * the caller fences (_mm_sfence) before anyone else may read d. */
static void stream_bytes(char* d, const char* s, size_t n) {
#if defined(__SSE2__)
  size_t head = (16 - ((uintptr_t)d & 15)) & 15;
  if (head > n) head = n;
  memcpy(d, s, head);
  d += head, s += head, n -= head;
  for (; n >= 64; d += 64, s += 64, n -= 64) {
    __m128i a = _mm_loadu_si128((const __m128i*)s), b = _mm_loadu_si128((const __m128i*)(s + 16));
    __m128i c = _mm_loadu_si128((const __m128i*)(s + 32)), e = _mm_loadu_si128((const __m128i*)(s + 48));
    _mm_stream_si128((__m128i*)d, a);
    _mm_stream_si128((__m128i*)(d + 16), b);
    _mm_stream_si128((__m128i*)(d + 32), c);
    _mm_stream_si128((__m128i*)(d + 48), e);
  }
#endif
  memcpy(d, s, n);
}

static void fence(void) {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

/* stream(dst, src): copies src's bytes to the start of dst with stores that bypass the cache
 * (non-temporal), for results that nobody reads soon: an ordinary copy first reads every line
 * of the destination from memory (to own it), which for arrays larger than the cache is a third
 * of the memory traffic. */
static napi_value Stream(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  Typed dst, src;
  if (!typed_arg(env, argv[0], "stream", &dst) || !typed_arg(env, argv[1], "stream", &src)) return NULL;
  if (dst.bytes < src.bytes) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: stream's destination is shorter than its source");
    return NULL;
  }
  stream_bytes(dst.data, src.data, src.bytes);
  fence();
  return NULL;
}

/* ---- fold --------------------------------------------------------------------------------- */

#define FOLD_MAX 1024
#define FOLD_CHUNK 4096

/* fold(op, out, copy, ins): boolean — out[i] = ((ins[0][i] op ins[1][i]) op ins[2][i]) … over
 * out's length, in the order of ins (rank order: the bits of the pairwise loop), written past the
 * cache; and the same values into copy, unless it is null. With out null, into copy only (over
 * its length): a rank that reduces a share for a root's result keeps none itself. One pass where
 * the pairwise loop makes p: each chunk is folded in a buffer that stays in L1, so the inputs are
 * read once and the result written once. copy may be one of ins (a rank's reduced share goes back where its
 * own share was): each chunk is read whole before it is written. False, with nothing done,
 * where combine would be. */
static napi_value Fold(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t op;
  CHECK(napi_get_value_int32(env, argv[0], &op));
  Typed out = {0}, copy = {0};
  napi_valuetype out_kind, kind;
  CHECK(napi_typeof(env, argv[1], &out_kind));
  CHECK(napi_typeof(env, argv[2], &kind));
  if (out_kind != napi_null && !typed_arg(env, argv[1], "fold", &out)) return NULL;
  if (kind != napi_null && !typed_arg(env, argv[2], "fold", &copy)) return NULL;
  if (out_kind == napi_null) {
    if (kind == napi_null) {
      napi_throw_type_error(env, NULL, "tsmpi_shm: fold needs a result array, a copy, or both");
      return NULL;
    }
    out.type = copy.type, out.length = copy.length, out.bytes = copy.bytes;
  }
  bool is_array;
  uint32_t p = 0;
  CHECK(napi_is_array(env, argv[3], &is_array));
  if (is_array) CHECK(napi_get_array_length(env, argv[3], &p));
  if (!is_array || p < 1 || p > FOLD_MAX) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: fold takes an array of 1 to 1024 typed arrays");
    return NULL;
  }
  const char* in[FOLD_MAX];
  for (uint32_t k = 0; k < p; k++) {
    napi_value v;
    Typed t;
    CHECK(napi_get_element(env, argv[3], k, &v));
    if (!typed_arg(env, v, "fold", &t)) return NULL;
    if (t.type != out.type || t.length < out.length) {
      napi_throw_range_error(env, NULL, "tsmpi_shm: fold takes arrays of one class, each at least as long as out");
      return NULL;
    }
    in[k] = t.data;
  }
  if (kind != napi_null && (copy.type != out.type || copy.length < out.length)) {
    napi_throw_range_error(env, NULL, "tsmpi_shm: fold's copy must be of out's class and at least as long");
    return NULL;
  }
  napi_value done;
  size_t size = out.length ? out.bytes / out.length : 1;
  /* Can C give JavaScript's bits for this class and op? (nothing is touched for 0 elements) */
  if (!combine_typed(op, out.type, out.data, in[0], in[0], 0)) {
    CHECK(napi_get_boolean(env, false, &done));
    return done;
  }
  _Alignas(64) char tmp[FOLD_CHUNK];
  /* The first chunk ends where out's lines begin, so the streamed stores fill whole lines. */
  size_t first = ((64 - ((uintptr_t)out.data & 63)) & 63) / size;
  for (size_t at = 0; at < out.length;) {
    size_t n = at == 0 && first ? first : FOLD_CHUNK / size;
    if (n > out.length - at) n = out.length - at;
    size_t off = at * size;
    if (p == 1) memcpy(tmp, in[0] + off, n * size);
    else {
      combine_typed(op, out.type, tmp, in[0] + off, in[1] + off, n);
      for (uint32_t k = 2; k < p; k++) combine_typed(op, out.type, tmp, tmp, in[k] + off, n);
    }
    if (copy.data) memcpy((char*)copy.data + off, tmp, n * size);
    if (out.data) stream_bytes((char*)out.data + off, tmp, n * size);
    at += n;
  }
  fence();
  CHECK(napi_get_boolean(env, true, &done));
  return done;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"map", NULL, Map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlink", NULL, Unlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"wake", NULL, Wake, NULL, NULL, NULL, napi_enumerable, NULL},
      {"yieldCpu", NULL, YieldCpu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sleep", NULL, Sleep, NULL, NULL, NULL, napi_enumerable, NULL},
      {"waiter", NULL, WaiterNew, NULL, NULL, NULL, napi_enumerable, NULL},
      {"arm", NULL, WaiterArm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, WaiterClose, NULL, NULL, NULL, napi_enumerable, NULL},
      {"combine", NULL, Combine, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stream", NULL, Stream, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fold", NULL, Fold, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
