/* C source of the compiled CPU rollout kernel (learnsyn.rollout.native builds and loads it).

   Layout: rows of BS lanes (synapses), [feature][lane]; a window's step column is
   x = [h; inputs; 1] (the cell's own state h, unlike the eager kernel's u = (h + 1) / 2: the
   weight gradients then come out without the cancellation that u's offset causes), and the GRU's
   work rows are [t; z; r; q = r h] with the candidate t = tanh (tanh_row; times out_scale[i]
   where the cell has the learned saturation S tanh(y / S): the 1 / S is in the weights).
   window_forward runs each block of lanes through every step (moments of the weights per (branch, group) cell,
   checkpoints every K steps);
   window_backward recomputes a chunk from its checkpoint, walks it in reverse, keeps the
   chunk's pre-activation gradients and multiplies them into per-lane weight-gradient sums.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Flush denormals to zero inside the kernels only (sigmoid tails and their products reach the
   denormal range, where every operation is a slow microcode assist); the caller's
   floating-point state is restored on the way out. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define DENORMALS_OFF unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040u);
#define DENORMALS_RESTORE _mm_setcsr(saved_csr);
#else
#define DENORMALS_OFF
#define DENORMALS_RESTORE
#endif
#define BS 32
#define MAXM 64

/* Vectors of 16 lanes (GCC's vector extension: one AVX-512 register, or two or four narrower
   ones elsewhere); loads and stores without alignment. */
#define VL 16
typedef float vec __attribute__((vector_size(4 * VL)));
typedef float vec_unaligned __attribute__((vector_size(4 * VL), aligned(4)));
static inline __attribute__((always_inline)) vec vload(const float *p) {
    return *(const vec_unaligned *)p;
}
static inline __attribute__((always_inline)) void vstore(float *p, vec v) {
    *(vec_unaligned *)p = v;
}

/* exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln(2) / 2: Taylor terms to r^7 leave a
   truncation error of 5e-9 relative, well under rounding (a one-sided truncation error of one
   ulp, as degree 6 leaves, biases every step the same way and shows in 2000-step gradients);
   written inline so that it vectorizes. */
static inline __attribute__((always_inline)) float exp_inline(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  /* fminf would not vectorize */
    float n = rintf(x * 1.44269504088896341f);
    float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int i; float f; } scale;
    scale.i = ((int)n + 127) << 23;
    return p * scale.f;
}

static inline __attribute__((always_inline)) float sigm(float x) { return 1.0f / (1.0f + exp_inline(-x)); }

/* sigmoid(a + b) of one row of BS lanes into out (b may be NULL). With AVX-512 the same
   exponential in registers of 16 lanes, with the scaling by 2^n in one instruction (vscalefps,
   which also takes arguments below -87 to 0 without a clamp) instead of four; elsewhere the
   loop above. */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline __attribute__((always_inline)) __m512 sigm16(__m512 x) {
    /* exp(-x) = 2^n e^r, n = round(-x / ln 2), r = -x - n ln 2; -x clamped on both sides: at
       x >= 1e14 the range reduction lost r entirely and sigmoid read NaN (review, session 35) */
    __m512 y = _mm512_max_ps(
        _mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(88.0f)),
        _mm512_set1_ps(-88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), y);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 q = _mm512_set1_ps(1.0f / 5040.0f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 720.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 120.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 24.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 6.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    __m512 d = _mm512_add_ps(_mm512_scalef_ps(q, n), _mm512_set1_ps(1.0f));
    __m512 e = _mm512_rcp14_ps(d);  /* 1 / d: the estimate, then one Newton step */
    return _mm512_fmadd_ps(e, _mm512_fnmadd_ps(d, e, _mm512_set1_ps(1.0f)), e);
}
#endif

static inline __attribute__((always_inline)) void sigm_row(float *out, const float *a,
                                                           const float *b) {
#if defined(__AVX512F__)
    for (int h = 0; h < BS; h += 16) {
        __m512 x = _mm512_loadu_ps(a + h);
        if (b) x = _mm512_add_ps(x, _mm512_loadu_ps(b + h));
        _mm512_storeu_ps(out + h, sigm16(x));
    }
#else
    for (int n = 0; n < BS; n++) out[n] = sigm(a[n] + (b ? b[n] : 0.0f));
#endif
}

/* tanh(p) from 2 p = a + b, one row of BS lanes into out (b may be NULL; out may be a), as
   2 sigmoid(2 p) - 1. That cancels near 0, where sigmoid is near 1/2: an absolute error of
   about 6e-8, float32's own near 1, but the learned saturation S tanh(y / S) multiplies it by S
   (review, session 33: at S = 1e4 a synapse's area read 0 against the reference's 129; at
   S = 1000, the held-linear rnn's of linear-range, a rotation-started rnn 125.5 against 128.7
   in ideal). Rows whose S exceeds EXACT_TANH_SCALE take tanh_row_exact: where |p| < ln(2) / 4
   the odd series to p^9 (truncation 2e-8 relative), beyond it 2 sigmoid - 1, within a few ulp
   there. On every row it cost 20-60 % of the speed (docs/performance.md), so rows of small S
   keep the sigmoid alone. */
#define EXACT_TANH_SCALE 8.0f

static __attribute__((noinline)) void tanh_row_exact(float *out, const float *a,
                                                     const float *b) {
    float near[BS], size[BS];
    for (int n = 0; n < BS; n++) {
        float p = 0.5f * (a[n] + (b ? b[n] : 0.0f)), q = p * p;
        float series = 62.0f / 2835.0f;
        series = series * q - 17.0f / 315.0f;
        series = series * q + 2.0f / 15.0f;
        series = series * q - 1.0f / 3.0f;
        near[n] = p + p * q * series;
        size[n] = fabsf(p);
    }
    sigm_row(out, a, b);
    for (int n = 0; n < BS; n++)
        out[n] = size[n] < 0.17328680f ? near[n] : 2.0f * out[n] - 1.0f;
}

static inline __attribute__((always_inline)) void tanh_row(float *out, const float *a,
                                                           const float *b, float scale) {
    if (scale > EXACT_TANH_SCALE) {
        tanh_row_exact(out, a, b);
        return;
    }
    sigm_row(out, a, b);
    for (int n = 0; n < BS; n++) out[n] = 2.0f * out[n] - 1.0f;
}

/* x = [h (m rows); inputs (a rows); 1]: rows of BS lanes. first: [rows][C], C = m + a + 1.
   Four rows at a time on both halves of the block: eight independent sums hide the latency of
   the multiply-adds (two per cycle on the Xeon measured) and each loaded x feeds four. */
static inline __attribute__((always_inline)) void affine(int rows, int C, int ld, const float *first, float x[][BS],
                   float out[][BS]) {
    int r = 0;
    for (; r + 3 < rows; r += 4) {
        const float *w = first + (size_t)r * ld;
        vec acc[4][2];
        for (int q = 0; q < 4; q++) acc[q][0] = acc[q][1] = (vec){0};
        for (int j = 0; j < C; j++) {
            vec lo = vload(x[j]), hi = vload(x[j] + VL);
            for (int q = 0; q < 4; q++) {
                float wj = w[(size_t)q * ld + j];
                acc[q][0] += wj * lo;
                acc[q][1] += wj * hi;
            }
        }
        for (int q = 0; q < 4; q++) {
            vstore(out[r + q], acc[q][0]);
            vstore(out[r + q] + VL, acc[q][1]);
        }
    }
    for (; r < rows; r++) {
        const float *w = first + (size_t)r * ld;
        vec lo = (vec){0}, hi = (vec){0};
        for (int j = 0; j < C; j++) {
            lo += w[j] * vload(x[j]);
            hi += w[j] * vload(x[j] + VL);
        }
        vstore(out[r], lo);
        vstore(out[r] + VL, hi);
    }
}

/* One GRU step from x (state rows 0..m-1) into next; g receives [s; z; r; q = r h]. The
   candidate's rows of `first` are zero on the state columns: they use the input columns only. */
static inline __attribute__((always_inline)) void gru_step(int m, int C, const float *first, const float *reset,
                     const float *out_scale, float x[][BS], float g[][BS],
                     float next[][BS]) {
    affine(m, C - m, C, first + m, x + m, g);
    affine(2 * m, C, C, first + (size_t)m * C, x, g + m);
    for (int r = m; r < 3 * m; r++)
        sigm_row(g[r], g[r], NULL);
    for (int i = 0; i < m; i++)
        for (int n = 0; n < BS; n++) g[3 * m + i][n] = g[2 * m + i][n] * x[i][n];
    float (*pre)[BS] = g + 4 * m;  /* scratch rows after the work rows */
    affine(m, m, m, reset, g + 3 * m, pre);
    for (int i = 0; i < m; i++)
        tanh_row(g[i], g[i], pre[i], out_scale ? out_scale[i] : 1.0f);
    if (out_scale) {  /* the candidate s_i tanh(.) (1 / s_i is folded into its rows) */
        for (int i = 0; i < m; i++) {
            float sc = out_scale[i];
            for (int n = 0; n < BS; n++)
                next[i][n] = x[i][n] + g[m + i][n] * (sc * g[i][n] - x[i][n]);
        }
        return;
    }
    for (int i = 0; i < m; i++)
        for (int n = 0; n < BS; n++)
            next[i][n] = x[i][n] + g[m + i][n] * (g[i][n] - x[i][n]);
}

static inline __attribute__((always_inline)) void rnn_step(int m, int C, const float *first,
                                                          const float *out_scale, float x[][BS],
                                                          float next[][BS]) {
    affine(m, C, C, first, x, next);
    for (int i = 0; i < m; i++) {
        tanh_row(next[i], next[i], NULL, out_scale ? out_scale[i] : 1.0f);
        if (out_scale) {  /* s_i tanh(.) (1 / s_i is folded into the rows of first) */
            float sc = out_scale[i];
            for (int n = 0; n < BS; n++) next[i][n] *= sc;
        }
    }
}

/* One step of the mlp cell, h' = h + D h + B x + d + V tanh(W [h; x] + a) / width: first's
   H rows [2W | 2a] (tanh(p) = 2 sigmoid(2p) - 1), then its m rows [D | B | d]; reset = V / width
   ([m][H]). g receives the H hidden values tanh(.), then m rows of scratch. The identity is
   added, not folded into D: float32 numbers near 1 are 6e-8 apart, so 1 + D would round a slow
   variable's decay rate of 1e-6 by up to 3%. */
static inline __attribute__((always_inline)) void mlp_step(int m, int H, int C, const float *first,
                                                          const float *reset, float x[][BS],
                                                          float g[][BS], float next[][BS]) {
    affine(H, C, C, first, x, g);
    for (int k = 0; k < H; k++)
        tanh_row(g[k], g[k], NULL, 1.0f);
    float (*correction)[BS] = g + H;
    affine(m, C, C, first + (size_t)H * C, x, next);
    affine(m, H, H, reset, g, correction);
    for (int i = 0; i < m; i++)
        for (int n = 0; n < BS; n++) next[i][n] += x[i][n] + correction[i][n];
}

typedef struct {
    int gru, m, a, N, T, K; /* gru: 1 GRU, 0 tanh RNN, 2 linear (x' = first x), 3 Markov
                               synapses (markov_forward), 4 mlp (mlp_step); 2 and 3 forward
                               only */
    int columns;           /* input columns per step: N, or N / 2 when both branches share them */
    int cells;             /* (branch, group) cells of the moments; 0: no moments */
    const float *first, *reset;
    const float *readout;  /* the model's c: w = c . h */
    const float *inputs;   /* [T][a][columns] */
    const float *head;     /* [a][N]: step 0's inputs for every lane, or NULL */
    const int *lane_cell;  /* [N]: the cell of each lane (-1: padding) */
    /* state constraint after every step (the scenario's `constrain`): 0 none, 1 bounded
       (clip to [-bound, bound], stochastic rounding to levels `spacing` apart, straight-through
       gradient), 2 noisy (add sigma * noise, then clip to [-bound, bound] when bound > 0);
       3 (Markov synapses only): no constraint, the numbers are the transitions' uniforms */
    int constraint;
    int noise_cols;        /* columns of noise: lane n reads column n % noise_cols */
    float bound, spacing, sigma;
    /* [ceil(noise_cols / BS)][T][m][BS]: the rounding uniforms or the Gaussian noise, by blocks
       of columns so that a block of lanes reads its steps' numbers from one stretch of memory */
    const float *noise;
    /* [m]: the saturation's output multipliers s (h' = s tanh(.), the GRU's candidate likewise;
       the 1 / s inside is folded into the weights), or NULL for plain tanh */
    const float *out_scale;
    /* gru 3 (Markov synapses, forward only): the number of states S; first is then the
       cumulative transition tables [2][S][S] (of positive events, then of negative ones),
       readout the weight of every state, and noise (constraint 3) each step's transition
       uniforms */
    int states;
    /* gru 4 (the mlp cell): the hidden units H; first is then [H + m][C], reset [m][H] */
    int hidden;
} window_t;

/* The constraint's numbers of step t, variable i, for the lanes n0 .. n0 + BS - 1. */
static inline __attribute__((always_inline)) const float *noise_row(const window_t *w, int m, int t, int i, int n0,
                                                          float tmp[BS]) {
    int P = w->noise_cols;
    size_t per_block = (size_t)w->T * m * BS, offset = ((size_t)t * m + i) * BS;
    if (P % BS == 0) return w->noise + (size_t)((n0 % P) / BS) * per_block + offset;
    for (int n = 0; n < BS; n++) {
        int col = (n0 + n) % P;
        tmp[n] = w->noise[(size_t)(col / BS) * per_block + offset + col % BS];
    }
    return tmp;
}

/* Steps ahead whose inputs and constraint numbers are prefetched: a block reads one row of
   128 bytes of inputs per step, each a * columns * 4 bytes after the previous one, a stride the
   hardware prefetchers do not follow (measured: a fifth of the kernels' time waited for these
   loads), and m rows of constraint numbers (measured: about as much in bounded and noisy). */
#define PREFETCH_STEPS 12

/* (clip(h, -b, b) + b) / spacing of one row of BS lanes: the position on the level grid,
   divided exactly as the reference divides. -ffast-math turns a plain division into a multiply
   by a reciprocal estimate (even written in double, even with -fno-reciprocal-math), which
   moved a state a whole level, one clipped at the bound too (review, session 35); AVX-512's
   division with an explicit rounding mode is left alone. Elsewhere a plain division in a
   function compiled without fast-math (the diff review found AVX2 builds still a level off). */
#if !defined(__AVX512F__)
static __attribute__((noinline, optimize("no-fast-math"))) void
level_positions_exact(const float *h, float b, float spacing, float *out) {
    for (int n = 0; n < BS; n++) {
        float v = h[n];
        out[n] = ((v < -b ? -b : (v > b ? b : v)) + b) / spacing;
    }
}
#endif
static inline __attribute__((always_inline)) void level_positions(const float *h, float b,
                                                                  float spacing, float *out) {
#if defined(__AVX512F__)
    __m512 hi = _mm512_set1_ps(b), lo = _mm512_set1_ps(-b), step = _mm512_set1_ps(spacing);
    for (int n = 0; n < BS; n += 16) {
        __m512 c = _mm512_max_ps(_mm512_min_ps(_mm512_loadu_ps(h + n), hi), lo);
        _mm512_storeu_ps(out + n, _mm512_div_round_ps(_mm512_add_ps(c, hi), step,
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#else
    level_positions_exact(h, b, spacing, out);
#endif
}

/* Apply step t's constraint to next (in place); scale (when given) is multiplied by the
   derivative of the constrained state by the unconstrained one (1 inside the range, else 0). */
static inline __attribute__((always_inline)) void constrain(const window_t *w, int m, int t, int n0, float next[][BS],
                                                  float scale[][BS]) {
    float b = w->bound, spacing = w->spacing, sigma = w->sigma, tmp[BS];
    if (t + PREFETCH_STEPS < w->T && w->noise_cols % BS == 0) {
        const float *ahead = noise_row(w, m, t + PREFETCH_STEPS, 0, n0, tmp);
        for (int line = 0; line < m * BS; line += 16) __builtin_prefetch(ahead + line);
    }
    for (int i = 0; i < m; i++) {
        const float *u = noise_row(w, m, t, i, n0, tmp);
        float *h = next[i];
        if (w->constraint == 1) {
            float position[BS];
            level_positions(h, b, spacing, position);
            for (int n = 0; n < BS; n++) {
                float v = h[n], pos = position[n];
                float lo = floorf(pos);
                float r = (lo + (u[n] < pos - lo ? 1.0f : 0.0f)) * spacing - b;
                r = r < -b ? -b : (r > b ? b : r);
                h[n] = r;
                if (scale) scale[i][n] *= (v >= -b && v <= b) ? 1.0f : 0.0f;
            }
        } else if (b > 0.0f) {
            for (int n = 0; n < BS; n++) {
                float v = h[n] + sigma * u[n];
                h[n] = v < -b ? -b : (v > b ? b : v);
                if (scale) scale[i][n] *= (v >= -b && v <= b) ? 1.0f : 0.0f;
            }
        } else {
            for (int n = 0; n < BS; n++) h[n] += sigma * u[n];
        }
    }
}

static inline __attribute__((always_inline)) void load_inputs(const window_t *w, int m, int a, int t, int n0,
                                                    float x[][BS]) {
    for (int k = 0; k < a; k++) {
        const float *src = (t == 0 && w->head)
            ? w->head + (size_t)k * w->N + n0
            : w->inputs + ((size_t)t * a + k) * w->columns + (n0 % w->columns);
        for (int n = 0; n < BS; n++) x[m + k][n] = src[n];
        if (t + PREFETCH_STEPS < w->T) {
            const float *ahead = w->inputs + ((size_t)(t + PREFETCH_STEPS) * a + k) * w->columns
                + (n0 % w->columns);
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 16);
        }
    }
    for (int n = 0; n < BS; n++) x[m + a][n] = 1.0f;
}

static inline __attribute__((always_inline)) void weights_of(const window_t *w, int m, const float h[][BS],
                                                   float y[BS]) {
    for (int n = 0; n < BS; n++) y[n] = 0.0f;
    for (int i = 0; i < m; i++)
        for (int n = 0; n < BS; n++) y[n] += w->readout[i] * h[i][n];
}

/* Add step t's (w, w^2) of one block to moments [T][cells][2]. */
static void add_moments(const window_t *w, int t, int n0, const float y[BS], float *moments) {
    const int *cell = w->lane_cell + n0;
    float *row = moments + (size_t)t * w->cells * 2;
    if (cell[0] >= 0 && cell[0] == cell[BS - 1]) {  /* cells are runs of lanes */
        float s1 = 0.0f, s2 = 0.0f;
        for (int n = 0; n < BS; n++) { s1 += y[n]; s2 += y[n] * y[n]; }
        row[2 * cell[0]] += s1;
        row[2 * cell[0] + 1] += s2;
        return;
    }
    for (int n = 0; n < BS; n++)
        if (cell[n] >= 0) { row[2 * cell[n]] += y[n]; row[2 * cell[n] + 1] += y[n] * y[n]; }
}

/* dL/dw of step t's weights of one block from grad_moments [T][cells][2]. */
static void weight_grads(const window_t *w, int t, int n0, const float y[BS],
                         const float *grad_moments, float dy[BS]) {
    const int *cell = w->lane_cell + n0;
    const float *row = grad_moments + (size_t)t * w->cells * 2;
    if (cell[0] >= 0 && cell[0] == cell[BS - 1]) {
        float g1 = row[2 * cell[0]], g2 = 2.0f * row[2 * cell[0] + 1];
        for (int n = 0; n < BS; n++) dy[n] = g1 + g2 * y[n];
        return;
    }
    for (int n = 0; n < BS; n++) {
        int c = cell[n] < 0 ? 0 : cell[n];
        float g = row[2 * c] + 2.0f * y[n] * row[2 * c + 1];
        dy[n] = cell[n] < 0 ? 0.0f : g;
    }
}

/* Blocks that run together: 2 where the two branches of a pair read the same columns (inputs
   shared, or the constraint's numbers), else 1. The blocks of the two branches of the same
   pairs then run step by step side by side, so that the second reads the step's inputs and
   constraint numbers from the L1 cache where the first left them (one pass over them instead
   of two: their reading was the largest cost of the constrained windows). */
static int ways(const window_t *w) {
    int half = w->N / 2;
    int paired = w->columns == half || (w->constraint && w->noise_cols == half);
    return w->N % (2 * BS) == 0 && paired ? 2 : 1;
}

/* The first lane of the k-th block: with 2 ways, blocks k and k + 1 (k even) are the two
   branches of the same pairs. */
static int block_start(const window_t *w, int k) {
    if (ways(w) == 2) return (k & 1) * (w->N / 2) + (k >> 1) * BS;
    return k * BS;
}

/* window_forward's loop, for m state rows and a input rows. */
static inline __attribute__((always_inline)) int forward_impl(const window_t *w, int m, int a, const float *start,
                                                   float *moments, float *boundaries,
                                                   float *final) {
    int N = w->N, T = w->T, K = w->K, C = m + a + 1, W = ways(w);
    if (m > MAXM || N % BS || w->columns % BS) return 1;
    DENORMALS_OFF
    float (*xs)[BS] = malloc(sizeof(float[BS]) * (C + 1) * W);
    float (*next)[BS] = malloc(sizeof(float[BS]) * m);
    int work = w->gru == 4 ? w->hidden + m : 5 * m;
    float (*g)[BS] = malloc(sizeof(float[BS]) * work);
    for (int k = 0; k < N / BS; k += W) {
        int starts[2];
        for (int v = 0; v < W; v++) {
            int n0 = starts[v] = block_start(w, k + v);
            float (*x)[BS] = xs + (size_t)v * (C + 1);
            for (int i = 0; i < m; i++)
                memcpy(x[i], start + (size_t)i * N + n0, sizeof(float[BS]));
        }
        for (int t = 0; t < T; t++)
            for (int v = 0; v < W; v++) {
                int n0 = starts[v];
                float (*x)[BS] = xs + (size_t)v * (C + 1);
                if (boundaries && t % K == 0)
                    for (int i = 0; i < m; i++)
                        memcpy(boundaries + ((size_t)(t / K) * m + i) * N + n0, x[i],
                               sizeof(float[BS]));
                load_inputs(w, m, a, t, n0, x);
                if (w->gru == 1) gru_step(m, C, w->first, w->reset, w->out_scale, x, g, next);
                else if (w->gru == 2) affine(m, C, C, w->first, x, next);  /* linear */
                else if (w->gru == 4) mlp_step(m, w->hidden, C, w->first, w->reset, x, g, next);
                else rnn_step(m, C, w->first, w->out_scale, x, next);
                if (w->constraint) constrain(w, m, t, n0, next, NULL);
                for (int i = 0; i < m; i++) memcpy(x[i], next[i], sizeof(float[BS]));
                if (moments) {
                    float y[BS];
                    weights_of(w, m, (const float (*)[BS])x, y);
                    add_moments(w, t, n0, y, moments);
                }
            }
        if (final)
            for (int v = 0; v < W; v++)
                for (int i = 0; i < m; i++)
                    memcpy(final + (size_t)i * N + starts[v], xs[(size_t)v * (C + 1) + i],
                           sizeof(float[BS]));
    }
    free(xs); free(next); free(g);
    DENORMALS_RESTORE
    return 0;
}

/* One step of a block of Markov synapses: state [BS] (indices as floats), events [BS], the
   transition uniforms u [BS]; the new state is the number of entries of the cumulative row
   (nondecreasing, checked by the caller) at or below u, at most S - 1, as the reference's
   (u >= row).sum(); y [BS] the new weights. tables: [2][S][S], the rows of positive events,
   then those of negative ones. Without branches (the events are random); with AVX-512, rows
   of up to 32 entries are gathered for 16 lanes at once (the compiler did not vectorize the
   loop; scalar: 11 ns per synapse-step here); rows longer than 32 entries are searched by
   bisection. */
static void markov_block(
    int S, const float *tables, const float *weights, const float *u, float *state,
    const float *events, float *y) {
#if defined(__AVX512F__)
    if (S <= 32) {  /* 16 lanes at a time: the rows' entries gathered, counted under masks */
        for (int h = 0; h < BS; h += 16) {
            __m512 zero = _mm512_setzero_ps(), event = _mm512_loadu_ps(events + h);
            __m512 uniform = _mm512_loadu_ps(u + h);
            __m512i i = _mm512_cvttps_epi32(_mm512_loadu_ps(state + h));
            __m512i row = _mm512_mullo_epi32(i, _mm512_set1_epi32(S));
            __mmask16 positive = _mm512_cmp_ps_mask(event, zero, _CMP_GT_OQ);
            row = _mm512_mask_add_epi32(row, ~positive, row, _mm512_set1_epi32(S * S));
            __m512i j = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
            for (int s = 0; s < S; s++) {
                __m512i at = _mm512_add_epi32(row, _mm512_set1_epi32(s));
                __m512 entry = _mm512_i32gather_ps(at, tables, 4);
                __mmask16 below = _mm512_cmp_ps_mask(uniform, entry, _CMP_GE_OQ);
                j = _mm512_mask_add_epi32(j, below, j, one);
            }
            j = _mm512_min_epi32(j, _mm512_set1_epi32(S - 1));
            __mmask16 moved = _mm512_cmp_ps_mask(event, zero, _CMP_NEQ_OQ);
            i = _mm512_mask_blend_epi32(moved, i, j);
            _mm512_storeu_ps(state + h, _mm512_cvtepi32_ps(i));
            _mm512_storeu_ps(y + h, _mm512_i32gather_ps(i, weights, 4));
        }
        return;
    }
#endif
    for (int n = 0; n < BS; n++) {
        int i = (int)state[n], j = 0;
        float event = events[n];
        const float *row = tables + (event > 0.0f ? 0 : S * S) + i * S;
        if (S <= 32) {
            for (int s = 0; s < S; s++) j += u[n] >= row[s];
        } else {
            int hi = S;
            while (j < hi) {
                int mid = (j + hi) / 2;
                if (u[n] >= row[mid]) j = mid + 1; else hi = mid;
            }
        }
        j = j < S - 1 ? j : S - 1;
        i = event != 0.0f ? j : i;
        state[n] = (float)i;
        y[n] = weights[i];
    }
}

/* window_forward of Markov synapses (gru 3): the state row holds each lane's state index (a
   float, as the reference's state), the first input row the event (0: no transition, > 0: the
   table of positive events, else that of negative ones); step t's transition uniforms are
   read as a constraint's numbers are (lane n: column n % noise_cols, so both branches of a
   pair share them), the weights of the new states summed into the moments. */
static int markov_forward(const window_t *w, const float *start, float *moments,
                          float *boundaries, float *final) {
    int N = w->N, T = w->T, S = w->states, a = w->a, W = ways(w);
    if (w->m != 1 || S < 1 || boundaries || w->constraint != 3 || !w->noise || N % BS
        || w->columns % BS)
        return 1;
    float (*xs)[BS] = malloc(sizeof(float[BS]) * (a + 2) * W);
    for (int k = 0; k < N / BS; k += W) {
        int starts[2];
        for (int v = 0; v < W; v++) {
            starts[v] = block_start(w, k + v);
            memcpy(xs[(size_t)v * (a + 2)], start + starts[v], sizeof(float[BS]));
        }
        for (int t = 0; t < T; t++)
            for (int v = 0; v < W; v++) {
                int n0 = starts[v];
                float (*x)[BS] = xs + (size_t)v * (a + 2), tmp[BS], y[BS];
                load_inputs(w, 1, a, t, n0, x);
                const float *u = noise_row(w, 1, t, 0, n0, tmp);
                if (t + PREFETCH_STEPS < T && w->noise_cols % BS == 0)
                    __builtin_prefetch(noise_row(w, 1, t + PREFETCH_STEPS, 0, n0, tmp));
                markov_block(S, w->first, w->readout, u, x[0], x[1], y);
                if (moments) add_moments(w, t, n0, y, moments);
            }
        if (final)
            for (int v = 0; v < W; v++)
                memcpy(final + starts[v], xs[(size_t)v * (a + 2)], sizeof(float[BS]));
    }
    free(xs);
    return 0;
}

/* Forward through T steps from start [m][N]. moments [T][cells][2] (+=), boundaries
   [ceil(T / K)][m][N] (the state at t = c K), final [m][N]: each may be NULL. The common
   state sizes get their own copy of the loop with the sizes known to the compiler (loops with
   constant bounds, unrolled: measured 20-40% faster forward). */
int window_forward(const window_t *w, const float *start, float *moments, float *boundaries,
                   float *final) {
#define FORWARD(M, A) \
    if (w->m == M && w->a == A) return forward_impl(w, M, A, start, moments, boundaries, final);
    if (w->gru == 3) return markov_forward(w, start, moments, boundaries, final);
    FORWARD(2, 1) FORWARD(2, 2) FORWARD(4, 1) FORWARD(4, 2) FORWARD(8, 1) FORWARD(8, 2)
#undef FORWARD
    return forward_impl(w, w->m, w->a, start, moments, boundaries, final);
}

/* One register tile of `accumulate`: RT x JT sums of 16 lanes (lanes h .. h + 15), kept in
   registers over all steps (RT and JT are constants where it is called). */
static inline __attribute__((always_inline)) void accumulate_tile(
    int RT, int JT, int steps, int h, int r, int j, float a[][BS], int a_stride, float b[][BS],
    int b_stride, float acc[][BS], int acc_ld) {
    vec t[4][4];
    for (int q = 0; q < RT; q++)
        for (int p = 0; p < JT; p++) t[q][p] = (vec){0};
    for (int s = 0; s < steps; s++) {
        vec av[4], bv[4];
        for (int q = 0; q < RT; q++) av[q] = vload(a[(size_t)s * a_stride + r + q] + h);
        for (int p = 0; p < JT; p++) bv[p] = vload(b[(size_t)s * b_stride + j + p] + h);
        for (int q = 0; q < RT; q++)
            for (int p = 0; p < JT; p++) t[q][p] += av[q] * bv[p];
    }
    for (int q = 0; q < RT; q++)
        for (int p = 0; p < JT; p++) {
            float *out = acc[(size_t)(r + q) * acc_ld + j + p] + h;
            vstore(out, vload(out) + t[q][p]);
        }
}

/* acc[r * acc_ld + j] += sum over s < steps of A(s, r) * B(s, j) lane by lane, where
   A(s, r) = a[s * a_stride + r] and B(s, j) = b[s * b_stride + j]: the weight gradients of a
   chunk, in register tiles of up to 4 x 4 vectors of 16 lanes (each loaded vector feeds four
   multiply-adds; 16 independent sums hide the multiply-add latency). */
static void accumulate(int steps, int R, int J, float a[][BS], int a_stride, float b[][BS],
                       int b_stride, float acc[][BS], int acc_ld) {
    for (int h = 0; h < BS; h += VL)
        for (int r = 0; r < R; r += 4)
            for (int j = 0; j < J; j += 4) {
                int rt = R - r < 4 ? R - r : 4, jt = J - j < 4 ? J - j : 4;
                switch (rt * 4 + jt) {
#define TILE(RT, JT)                                                                          \
    case RT * 4 + JT:                                                                         \
        accumulate_tile(RT, JT, steps, h, r, j, a, a_stride, b, b_stride, acc, acc_ld);       \
        break;
                    TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4)
                    TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(2, 4)
                    TILE(3, 1) TILE(3, 2) TILE(3, 3) TILE(3, 4)
                    TILE(4, 1) TILE(4, 2) TILE(4, 3) TILE(4, 4)
#undef TILE
                }
            }
}

static void add_lanes(float sums[][BS], size_t count, double *total) {
    for (size_t k = 0; k < count; k++) {
        float acc = 0.0f;
        for (int n = 0; n < BS; n++) acc += sums[k][n];
        total[k] += acc;
    }
}

static float *transposed(int rows, int cols, int used_cols, const float *matrix) {
    float *out = malloc(sizeof(float) * (size_t)used_cols * rows);
    for (int j = 0; j < used_cols; j++)
        for (int r = 0; r < rows; r++) out[(size_t)j * rows + r] = matrix[(size_t)r * cols + j];
    return out;
}

/* Backward of the moments: grad_first [rows][C], grad_reset [m][m], grad_readout [m] and
   (with out_scale) grad_scale [m], the gradient of the output multipliers s, are added to. The states are recomputed chunk by chunk from boundaries;
   each chunk's pre-activation gradients are kept, then multiplied into the weight gradients. */
static inline __attribute__((always_inline)) int backward_impl(
    const window_t *w, int m, int a, const float *boundaries, const float *grad_moments,
    float *grad_first, float *grad_reset, float *grad_readout, float *grad_scale) {
    int N = w->N, T = w->T, K = w->K, C = m + a + 1;
    /* the mlp (gru 4): rows [hidden; linear], gates the hidden values, reset V / width */
    int mlp = w->gru == 4, H = mlp ? w->hidden : 0;
    int gru = mlp ? 0 : w->gru, rows = gru ? 3 * m : m + H, drows = rows + 1;
    if (gru >= 2) return 1;  /* linear and Markov synapses have no parameters to train */
    const float *first = w->first, *reset = w->reset, *readout = w->readout;
    const float *osc = w->out_scale;  /* the saturation's multipliers s, or NULL */
    if (m > MAXM || N % BS || w->columns % BS || (osc && !grad_scale) || (mlp && osc)) return 1;
    DENORMALS_OFF
    size_t lane_first = (size_t)rows * C;
    size_t lane_reset = gru ? (size_t)m * m : (size_t)m * H;
    int stride = mlp ? H : 4 * m;  /* rows of gates per step */
    float (*gf)[BS] = malloc(sizeof(float[BS]) * lane_first);  /* per-lane gradient sums */
    float (*gr)[BS] = malloc(sizeof(float[BS]) * (lane_reset + 1));
    float (*states)[BS] = malloc(sizeof(float[BS]) * (size_t)(K + 1) * (C + 1));
    float (*gates)[BS] = malloc(sizeof(float[BS]) * ((size_t)K * stride + m + 1));
    float (*deltas)[BS] = malloc(sizeof(float[BS]) * (size_t)K * drows);
    float (*dus)[BS] = malloc(sizeof(float[BS]) * m * 2);  /* dL/dh carried back, per way */
    float (*dn)[BS] = malloc(sizeof(float[BS]) * m);
    float (*dq)[BS] = malloc(sizeof(float[BS]) * (mlp ? H : m));  /* GRU dL/dq, mlp dL/dtanh */
    /* constrained windows: d(constrained h') / d(cell output), times the RNN's tanh' */
    float (*scale)[BS] = w->constraint ? malloc(sizeof(float[BS]) * (size_t)K * m) : NULL;
    /* the scaled RNN: each step's tanh value (h' / s before the constraint) */
    float (*taus)[BS] = osc && !gru ? malloc(sizeof(float[BS]) * (size_t)K * m) : NULL;
    float (*gs)[BS] = malloc(sizeof(float[BS]) * m);  /* per-lane sums of dL/ds */
    /* dL/du through `first`: the GRU's candidate rows are zero on the state columns */
    int skip = gru ? m : 0;
    float *first_t = transposed(rows - skip, C, m, first + (size_t)skip * C);
    float *reset_t = gru ? transposed(m, m, m, reset) : (mlp ? transposed(m, H, H, reset) : NULL);
    float (*gh)[BS] = malloc(sizeof(float[BS]) * m);  /* per-lane sums of h dy: dL/dc */
    /* the lanes of a chunk are added up in double: the two branches' gradients nearly cancel */
    double *total = calloc(lane_first + lane_reset + 2 * (size_t)m, sizeof(double));
    int chunks = (T + K - 1) / K;
    int W = ways(w);  /* the blocks of both branches take turns chunk by chunk */
    for (int k = 0; k < N / BS; k += W) {
        for (int turn = 0; turn < chunks * W; turn++) {  /* chunks last to first */
            int c = chunks - 1 - turn / W, v = turn % W, n0 = block_start(w, k + v);
            float (*du)[BS] = dus + (size_t)v * m;
            memset(gf, 0, sizeof(float[BS]) * lane_first);
            memset(gr, 0, sizeof(float[BS]) * (lane_reset + 1));
            memset(gh, 0, sizeof(float[BS]) * m);
            memset(gs, 0, sizeof(float[BS]) * m);
            int t0 = c * K, len = T - t0 < K ? T - t0 : K;
            /* recompute: states[s] holds x of step t0 + s ([h; inputs; 1], C rows) */
            for (int i = 0; i < m; i++)
                memcpy(states[i], boundaries + ((size_t)c * m + i) * N + n0, sizeof(float[BS]));
            for (int s = 0; s < len; s++) {
                float (*x)[BS] = states + (size_t)s * (C + 1);
                float (*nx)[BS] = states + (size_t)(s + 1) * (C + 1);
                load_inputs(w, m, a, t0 + s, n0, x);
                if (gru) gru_step(m, C, first, reset, osc, x, gates + (size_t)s * 4 * m, nx);
                else if (mlp) mlp_step(m, H, C, first, reset, x, gates + (size_t)s * H, nx);
                else rnn_step(m, C, first, osc, x, nx);
                if (taus) {  /* the scaled RNN: the tanh values, and the constraint's mask */
                    float (*tu)[BS] = taus + (size_t)s * m;
                    for (int i = 0; i < m; i++) {
                        float inverse = 1.0f / osc[i];
                        for (int n = 0; n < BS; n++) tu[i][n] = nx[i][n] * inverse;
                    }
                    if (scale) {
                        float (*sc)[BS] = scale + (size_t)s * m;
                        for (int i = 0; i < m; i++)
                            for (int n = 0; n < BS; n++) sc[i][n] = 1.0f;
                        constrain(w, m, t0 + s, n0, nx, sc);
                    }
                } else if (scale) {
                    float (*sc)[BS] = scale + (size_t)s * m;
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++)
                            sc[i][n] = gru || mlp ? 1.0f : 0.5f * (1.0f - nx[i][n] * nx[i][n]);
                    constrain(w, m, t0 + s, n0, nx, sc);
                }
            }
            if (c == chunks - 1) {  /* the last state's weight: dL/du_T */
                float y[BS], dy[BS];
                float (*fx)[BS] = states + (size_t)len * (C + 1);
                weights_of(w, m, (const float (*)[BS])fx, y);
                weight_grads(w, T - 1, n0, y, grad_moments, dy);
                for (int i = 0; i < m; i++)
                    for (int n = 0; n < BS; n++) {
                        du[i][n] = readout[i] * dy[n];
                        gh[i][n] += dy[n] * fx[i][n];
                    }
            }
            for (int s = len - 1; s >= 0; s--) {
                int t = t0 + s;
                float (*x)[BS] = states + (size_t)s * (C + 1);
                float (*nx)[BS] = states + (size_t)(s + 1) * (C + 1);
                float (*delta)[BS] = deltas + (size_t)s * drows;
                if (taus) {  /* h' = s tanh(y): dh'/dy = s (1 - tanh^2), dh'/ds = tanh */
                    float (*tu)[BS] = taus + (size_t)s * m;
                    float (*sc)[BS] = scale ? scale + (size_t)s * m : NULL;
                    for (int i = 0; i < m; i++) {
                        float S = osc[i];
                        for (int n = 0; n < BS; n++) {
                            float d = sc ? du[i][n] * sc[i][n] : du[i][n], tv = tu[i][n];
                            gs[i][n] += d * tv;
                            delta[i][n] = d * S * 0.5f * (1.0f - tv * tv);
                        }
                    }
                } else if (mlp) {  /* the linear rows' gradient is dL/dh', the identity's too */
                    float (*sc)[BS] = scale ? scale + (size_t)s * m : NULL;
                    float (*tau)[BS] = gates + (size_t)s * H;
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++)
                            dn[i][n] = delta[H + i][n] = sc ? du[i][n] * sc[i][n] : du[i][n];
                    affine(H, m, m, reset_t, delta + H, dq);  /* dL/dtanh */
                    for (int k = 0; k < H; k++)  /* d tanh / d(2p) = (1 - tanh^2) / 2 */
                        for (int n = 0; n < BS; n++)
                            delta[k][n] = dq[k][n] * 0.5f * (1.0f - tau[k][n] * tau[k][n]);
                } else if (!gru && scale) {
                    float (*sc)[BS] = scale + (size_t)s * m;
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++) delta[i][n] = du[i][n] * sc[i][n];
                } else if (!gru) {
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++)
                            delta[i][n] = du[i][n] * 0.5f * (1.0f - nx[i][n] * nx[i][n]);
                } else {
                    if (scale) {
                        float (*sc)[BS] = scale + (size_t)s * m;
                        for (int i = 0; i < m; i++)
                            for (int n = 0; n < BS; n++) du[i][n] *= sc[i][n];
                    }
                    float (*g)[BS] = gates + (size_t)s * 4 * m;
                    /* the candidate row holds tv = tanh(p) of its pre-activation 2 p:
                       d tv / d(2p) = (1 - tv^2) / 2; S tanh: dh~/dS = tv */
                    if (osc) {
                        for (int i = 0; i < m; i++) {
                            float S = osc[i];
                            for (int n = 0; n < BS; n++) {
                                float tv = g[i][n], z = g[m + i][n], h = x[i][n], d = du[i][n];
                                float dz = d * z;
                                delta[m + i][n] = d * (S * tv - h) * z * (1.0f - z);
                                delta[i][n] = 0.5f * dz * S * (1.0f - tv * tv);
                                dn[i][n] = d * (1.0f - z);
                                gs[i][n] += dz * tv;
                            }
                        }
                    } else {
                        for (int i = 0; i < m; i++)
                            for (int n = 0; n < BS; n++) {
                                float tv = g[i][n], z = g[m + i][n], h = x[i][n], d = du[i][n];
                                delta[m + i][n] = d * (tv - h) * z * (1.0f - z);
                                delta[i][n] = 0.5f * d * z * (1.0f - tv * tv);
                                dn[i][n] = d * (1.0f - z);
                            }
                    }
                    affine(m, m, m, reset_t, delta, dq);  /* dL/dq */
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++) {
                            float r = g[2 * m + i][n];
                            float dr = dq[i][n] * x[i][n];
                            dn[i][n] += dq[i][n] * r;
                            delta[2 * m + i][n] = dr * r * (1.0f - r);
                        }
                }
                /* the weight of the state in x (age t - 1) */
                if (t > 0) {
                    float y[BS];
                    weights_of(w, m, (const float (*)[BS])x, y);
                    weight_grads(w, t - 1, n0, y, grad_moments, delta[rows]);
                    for (int i = 0; i < m; i++)
                        for (int n = 0; n < BS; n++)
                            gh[i][n] += delta[rows][n] * x[i][n];
                } else {
                    for (int n = 0; n < BS; n++) delta[rows][n] = 0.0f;
                    continue;
                }
                affine(m, rows - skip, rows - skip, first_t, delta + skip, du);
                for (int j = 0; j < m; j++)
                    for (int n = 0; n < BS; n++)
                        du[j][n] += (gru || mlp ? dn[j][n] : 0.0f) + readout[j] * delta[rows][n];
            }
            if (gru) {
                accumulate(len, m, C - m, deltas, drows, states + m, C + 1, gf + m, C);
                accumulate(len, m, m, deltas, drows, gates + 3 * m, 4 * m, gr, m);
            }
            if (mlp) accumulate(len, m, H, deltas + H, drows, gates, H, gr, H);  /* V / width */
            accumulate(len, rows - skip, C, deltas + skip, drows, states, C + 1,
                       gf + (size_t)skip * C, C);
            add_lanes(gf, (size_t)rows * C, total);
            add_lanes(gr, lane_reset, total + lane_first);
            add_lanes(gh, (size_t)m, total + lane_first + lane_reset);
            if (osc) add_lanes(gs, (size_t)m, total + lane_first + lane_reset + m);
        }
    }
    for (size_t k = 0; k < (size_t)rows * C; k++) grad_first[k] += (float)total[k];
    for (size_t k = 0; k < lane_reset; k++) grad_reset[k] += (float)total[lane_first + k];
    for (int j = 0; j < m; j++) grad_readout[j] += (float)total[lane_first + lane_reset + j];
    if (osc)
        for (int j = 0; j < m; j++) grad_scale[j] += (float)total[lane_first + lane_reset + m + j];
    free(gh); free(gs); free(taus); free(total);
    free(gf); free(gr); free(states); free(gates); free(deltas); free(dus); free(dn); free(dq);
    free(first_t); free(reset_t); free(scale);
    DENORMALS_RESTORE
    return 0;
}

/* The backward for the state sizes of window_forward's own copies, and any other. */
int window_backward(const window_t *w, const float *boundaries, const float *grad_moments,
                    float *grad_first, float *grad_reset, float *grad_readout,
                    float *grad_scale) {
#define BACKWARD(M, A)                                                                    \
    if (w->m == M && w->a == A)                                                          \
        return backward_impl(w, M, A, boundaries, grad_moments, grad_first, grad_reset,  \
                             grad_readout, grad_scale);
    BACKWARD(2, 1) BACKWARD(2, 2) BACKWARD(4, 1) BACKWARD(4, 2) BACKWARD(8, 1) BACKWARD(8, 2)
#undef BACKWARD
    return backward_impl(w, w->m, w->a, boundaries, grad_moments, grad_first, grad_reset,
                         grad_readout, grad_scale);
}

/* ---- torch's CPU generator, reproduced: the constrained windows' random numbers ----------
   torch.rand on a CPU generator consumes one 32-bit output of its mt19937 per float32 value,
   in order (aten/src/ATen/core/MT19937RNGEngine.h; uniform = (y & (2^24 - 1)) 2^-24), and
   torch.randn of a contiguous float32 tensor of n >= 16 values (n a multiple of 16) draws n such
   uniforms and maps each block of 16 by Box-Muller (1 - u[j], u[j + 8] -> j, j + 8). Here the
   same numbers are made several times faster than through torch; the caller reads the
   generator's state before and writes it back after (learnsyn.rollout.native.draw_constrained). */
#define MT_N 624
#define MT_M 397

static inline unsigned int mt_mix(unsigned int u, unsigned int v) {
    unsigned int y = (u & 0x80000000u) | (v & 0x7fffffffu);
    return (y >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

static void mt_twist(unsigned int *p) {
    for (int i = 0; i < MT_N - MT_M; i++) p[i] = p[i + MT_M] ^ mt_mix(p[i], p[i + 1]);
    for (int i = MT_N - MT_M; i < MT_N - 1; i++)
        p[i] = p[i + MT_M - MT_N] ^ mt_mix(p[i], p[i + 1]);
    p[MT_N - 1] = p[MT_M - 1] ^ mt_mix(p[MT_N - 1], p[0]);
}

/* n uniforms in [0, 1) as torch.rand(n) would draw them; state[MT_N], left, next as torch's. */
static void mt_uniforms(unsigned int *state, int *left, int *next, float *out, size_t n) {
    while (n) {
        if (*left <= 1) { mt_twist(state); *left = MT_N + 1; *next = 0; }
        size_t c = (size_t)(*left - 1);
        if (c > n) c = n;
        const unsigned int *p = state + *next;
        for (size_t q = 0; q < c; q++) {
            unsigned int y = p[q];
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c5680u;
            y ^= (y << 15) & 0xefc60000u;
            y ^= y >> 18;
            out[q] = (float)(y & 0xffffffu) * (1.0f / 16777216.0f);
        }
        *next += (int)c; *left -= (int)c; out += c; n -= c;
    }
}

/* log, sine and cosine written inline so that the Box-Muller loop vectorizes (the library's
   vector versions were not used by the compiler here); errors about 1e-7, against torch's own
   float32 Box-Muller (within 1e-6 of it, which is what the agreement tests allow for). */
static inline float log_inline(float x) {  /* x > 0, normal */
    union { float f; int i; } v = { x };
    int e = ((v.i >> 23) & 0xff) - 127;
    v.i = (v.i & 0x007fffff) | 0x3f800000;  /* mantissa in [1, 2) */
    float mant = v.f;
    int big = mant > 1.41421356f;
    mant = big ? 0.5f * mant : mant;
    e += big;
    float s = (mant - 1.0f) / (mant + 1.0f), s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return (float)e * 0.693147180559945309f + 2.0f * s * p;
}

/* sin and cos of theta in [0, 2 pi) */
static inline void sincos_inline(float theta, float *sine, float *cosine) {
    float t = theta - 3.14159265358979324f;  /* [-pi, pi): sin(theta) = -sin t, same for cos */
    float q = rintf(t * 0.636619772367581343f);
    float r = (t - q * 1.5703125f) - q * 4.83826794896619231e-4f;
    float r2 = r * r;
    float sp = -1.0f / 39916800.0f;
    sp = sp * r2 + 1.0f / 362880.0f;
    sp = sp * r2 - 1.0f / 5040.0f;
    sp = sp * r2 + 1.0f / 120.0f;
    sp = sp * r2 - 1.0f / 6.0f;
    sp = sp * r2 + 1.0f;
    float sr = r * sp;
    float cp = 1.0f / 3628800.0f;
    cp = cp * r2 - 1.0f / 40320.0f;
    cp = cp * r2 + 1.0f / 720.0f;
    cp = cp * r2 - 1.0f / 24.0f;
    cp = cp * r2 + 0.5f;
    float cr = 1.0f - r2 * cp;
    int k = (int)q & 3;  /* t = k pi / 2 + r */
    float st = k == 0 ? sr : (k == 1 ? cr : (k == 2 ? -sr : -cr));
    float ct = k == 0 ? cr : (k == 1 ? -sr : (k == 2 ? -cr : sr));
    *sine = -st;
    *cosine = -ct;
}

/* Box-Muller of one pair of uniforms (torch's normal_fill_16: u from 1 - d[j], angle from
   d[j + 8]). */
static inline __attribute__((always_inline)) void box_muller_pair(float first, float second,
                                                                  float *cosine_out,
                                                                  float *sine_out) {
    float radius = sqrtf(-2.0f * log_inline(1.0f - first));
    float sine, cosine;
    sincos_inline(6.2831853071795864769f * second, &sine, &cosine);
    *cosine_out = radius * cosine;
    *sine_out = radius * sine;
}

/* Box-Muller of blocks of 16 uniforms, in place (torch's normal_fill_16); a block's halves are
   contiguous, so the loop over j runs on vectors of 8 (a gathered form measured 5x slower);
   two blocks at a time run on vectors of 16 (their halves side by side). */
static void box_muller(float *restrict data, size_t n) {
    size_t blocks = n / 16, b = 0;
    for (; b + 1 < blocks; b += 2) {
        float *d = data + b * 16, first[16], second[16], cosine[16], sine[16];
        for (int j = 0; j < 8; j++) {
            first[j] = d[j];
            first[j + 8] = d[16 + j];
            second[j] = d[j + 8];
            second[j + 8] = d[24 + j];
        }
        for (int j = 0; j < 16; j++) box_muller_pair(first[j], second[j], &cosine[j], &sine[j]);
        for (int j = 0; j < 8; j++) {
            d[j] = cosine[j];
            d[j + 8] = sine[j];
            d[16 + j] = cosine[j + 8];
            d[24 + j] = sine[j + 8];
        }
    }
    for (; b < blocks; b++) {
        float *d = data + b * 16;
        for (int j = 0; j < 8; j++) box_muller_pair(d[j], d[j + 8], &d[j], &d[j + 8]);
    }
}

/* [BS][M] -> [M][BS] for a constant M: unrolled, the compiler turns it into shuffles (the
   general loop ran as scalar moves: half the time of drawing a constraint's numbers). */
static inline __attribute__((always_inline)) void transpose_block(int M, const float *in,
                                                                  float *out) {
    for (int n = 0; n < BS; n++)
        for (int i = 0; i < M; i++) out[i * BS + n] = in[n * M + i];
}

/* `steps` steps of a window, each drawn as the reference does: (from step `events_from` on)
   rand(pairs, k) for the events into events [..][pairs][k] (ideal = 1, k = 1: the events
   themselves, +1 where the uniform is below 1/2, else -1), then (mode 1) the constraint's
   rand(pairs, m) or (mode 2) randn(pairs, m), written as steps t0 .. t0 + steps - 1 of noise
   [ceil(pairs / BS)][T][m][BS] (the kernel's layout); mode 0: no constraint numbers. randn
   needs pairs * m a multiple of 16 (checked by the caller). */
int draw_steps(unsigned int *state, int *left_next, int steps, int pairs, int k, int m,
               int mode, int events_from, int ideal, float *events, float *noise, int T,
               int t0) {
    size_t count = mode ? (size_t)pairs * m : 0;
    if (mode == 2 && (count % 16 || count < 16)) return 1;
    if (ideal && k != 1) return 1;
    float *scratch = malloc(sizeof(float) * (count + 1));
    int left = left_next[0], next = left_next[1];
    for (int s = 0; s < steps; s++) {
        if (s >= events_from) {
            float *row = events + (size_t)(s - events_from) * pairs * k;
            mt_uniforms(state, &left, &next, row, (size_t)pairs * k);
            if (ideal)
                for (int p = 0; p < pairs; p++) row[p] = row[p] < 0.5f ? 1.0f : -1.0f;
        }
        if (!mode) continue;
        mt_uniforms(state, &left, &next, scratch, count);
        if (mode == 2) box_muller(scratch, count);
        for (int p0 = 0; p0 < pairs; p0 += BS) {  /* one block of columns: [BS][m] -> [m][BS] */
            float *out = noise + (((size_t)(p0 / BS) * T + t0 + s) * m) * BS;
            const float *in = scratch + (size_t)p0 * m;
            int lanes = pairs - p0 < BS ? pairs - p0 : BS;
            if (lanes == BS && m == 8) transpose_block(8, in, out);
            else if (lanes == BS && m == 4) transpose_block(4, in, out);
            else if (lanes == BS && m == 2) transpose_block(2, in, out);
            else
                for (int i = 0; i < m; i++)
                    for (int n = 0; n < lanes; n++)
                        out[(size_t)i * BS + n] = in[(size_t)n * m + i];
        }
    }
    left_next[0] = left; left_next[1] = next;
    free(scratch);
    return 0;
}
