/* The tracker's per-frame work: batched constant-velocity Kalman filters over XYAH boxes, box overlaps,
 * optimal one-to-one matching of candidate pairs, and ByteTracker's whole update (edgenode/core/bytetrack.py
 * documents the semantics; edgenode/kernels/track.py is the ctypes side and owns every buffer).
 *
 * Arithmetic: float64, each operation written in the order the former numpy code evaluated it, and built with
 * -ffp-contract=off, so every value is rounded the same way on every machine (no fused multiply-add).
 *
 * Track state: 20 doubles per track, STATE_WIDTH apart: x, y, a, h; their velocities; then per component the
 * 2x2 covariance blocks P_pp, P_pv, P_vv (four each). The motion couples each component only with its own
 * velocity and every noise is diagonal, so these blocks are the whole 8x8 covariance. */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define STATE_WIDTH 20
#define POS 0
#define VEL 4
#define PP 8
#define PV 12
#define VV 16

/* Kalman parameters (doubles), written by edgenode.kernels.track.kalman_parameters. */
enum {
    K_TIME_UNIT_NS = 0, /* filter time unit in ns */
    K_MODEL = 1,        /* 0: edgenode's filter; 1: EdgeFirst's (an ablation of the benchmark) */
    K_FRAME_CLOCK = 2,  /* nonzero: every prediction is one time unit, whatever the elapsed time */
    K_INNOVATION = 3,   /* nonzero: measurements first moved this fraction of the way from the prediction */
    K_UPDATE = 4,       /* --track-update (EdgeFirst's filter scales its innovation by it) */
    K_INIT_PP_H2 = 5, K_INIT_PP_C = 9, K_INIT_VV_H2 = 13, K_INIT_VV_C = 17,
    K_POS_H2 = 21, K_POS_C = 25, K_VEL_H2 = 29, K_VEL_C = 33, /* process noise per time unit */
    K_INNOV_H2 = 37, K_INNOV_C = 41,                           /* measurement noise, already / update */
    K_SIZE = 45
};

/* Smallest box side when converting to XYAH, and the floor of a union area (edgenode.core.kalman, assignment). */
#define MIN_SIDE 1e-5
#define MIN_UNION 1e-12

/* numpy's maximum and minimum: NaN propagates. */
static inline double np_max(double a, double b) { return (a >= b || a != a) ? a : b; }
static inline double np_min(double a, double b) { return (a <= b || a != a) ? a : b; }

/* --- Kalman filter ------------------------------------------------------------------------------------------ */

static void kalman_start(const double *k, double *s, const double *xyah) {
    double h = xyah[3], h2 = h * h;
    memset(s, 0, STATE_WIDTH * sizeof(double));
    for (int i = 0; i < 4; i++) s[POS + i] = xyah[i];
    if (k[K_MODEL] == 0.0) {
        for (int i = 0; i < 4; i++) {
            s[PP + i] = k[K_INIT_PP_H2 + i] * h2 + k[K_INIT_PP_C + i];
            s[VV + i] = k[K_INIT_VV_H2 + i] * h2 + k[K_INIT_VV_C + i];
        }
    } else { /* EdgeFirst: (2 wp h + cp)^2 and (10 wv h + cv)^2 */
        for (int i = 0; i < 4; i++) {
            double p = (2.0 * k[K_POS_H2 + i]) * h + k[K_POS_C + i];
            double v = (10.0 * k[K_VEL_H2 + i]) * h + k[K_VEL_C + i];
            s[PP + i] = p * p;
            s[VV + i] = v * v;
        }
    }
}

static void kalman_predict(const double *k, double *state, int64_t n, int64_t elapsed_ns) {
    if (k[K_FRAME_CLOCK] != 0.0) elapsed_ns = (int64_t)k[K_TIME_UNIT_NS];
    if (n <= 0) return;
    if (k[K_MODEL] != 0.0) { /* EdgeFirst: x += 3 v, one frame per call */
        for (int64_t t = 0; t < n; t++) {
            double *s = state + t * STATE_WIDTH;
            for (int i = 0; i < 4; i++) s[POS + i] = s[POS + i] + 3.0 * s[VEL + i];
            double h = s[POS + 3]; /* the predicted height, as the reference reads it */
            for (int i = 0; i < 4; i++) {
                double pp = s[PP + i], pv = s[PV + i], vv = s[VV + i];
                double p = k[K_POS_H2 + i] * h + k[K_POS_C + i], v = k[K_VEL_H2 + i] * h + k[K_VEL_C + i];
                s[PP + i] = ((pp + 6.0 * pv) + 9.0 * vv) + p * p;
                s[PV + i] = pv + 3.0 * vv;
                s[VV + i] = vv + v * v;
            }
        }
        return;
    }
    if (elapsed_ns <= 0) return;
    double dt = (double)elapsed_ns / k[K_TIME_UNIT_NS];
    double two_dt = 2.0 * dt, dt2 = dt * dt;
    double pos_h2[4], pos_c[4], vel_h2[4], vel_c[4];
    for (int i = 0; i < 4; i++) {
        pos_h2[i] = k[K_POS_H2 + i] * dt;
        pos_c[i] = k[K_POS_C + i] * dt;
        vel_h2[i] = k[K_VEL_H2 + i] * dt;
        vel_c[i] = k[K_VEL_C + i] * dt;
    }
    for (int64_t t = 0; t < n; t++) {
        double *s = state + t * STATE_WIDTH;
        double h2 = s[POS + 3] * s[POS + 3]; /* process noise scales with the height before the step */
        for (int i = 0; i < 4; i++) {
            double pp = s[PP + i], pv = s[PV + i], vv = s[VV + i];
            s[POS + i] = s[POS + i] + dt * s[VEL + i];
            s[PP + i] = (((pp + two_dt * pv) + dt2 * vv) + pos_h2[i] * h2) + pos_c[i];
            s[PV + i] = pv + dt * vv;
            s[VV + i] = (vv + vel_h2[i] * h2) + vel_c[i];
        }
    }
}

static void kalman_correct(const double *k, double *s, const double *measured) {
    double z[4];
    if (k[K_MODEL] != 0.0) { /* EdgeFirst: z = x + v, the innovation times update, P as for a full update */
        double h = s[POS + 3];
        for (int i = 0; i < 4; i++) {
            double pp = s[PP + i], pv = s[PV + i], vv = s[VV + i];
            double p = k[K_POS_H2 + i] * h + k[K_POS_C + i];
            double projected = s[POS + i] + s[VEL + i];
            double sum = ((pp + 2.0 * pv) + vv) + p * p;
            double kp = (pp + pv) / sum, kv = (pv + vv) / sum;
            double innovation = k[K_UPDATE] * (measured[i] - projected);
            s[POS + i] = s[POS + i] + kp * innovation;
            s[VEL + i] = s[VEL + i] + kv * innovation;
            s[PP + i] = pp - (kp * kp) * sum;
            s[PV + i] = pv - (kp * kv) * sum;
            s[VV + i] = vv - (kv * kv) * sum;
        }
        return;
    }
    for (int i = 0; i < 4; i++) z[i] = measured[i];
    if (k[K_INNOVATION] != 0.0)
        for (int i = 0; i < 4; i++) z[i] = s[POS + i] + k[K_INNOVATION] * (z[i] - s[POS + i]);
    double h2 = s[POS + 3] * s[POS + 3];
    for (int i = 0; i < 4; i++) {
        double pp = s[PP + i], pv = s[PV + i];
        double innovation_var = (pp + k[K_INNOV_H2 + i] * h2) + k[K_INNOV_C + i];
        double kp = pp / innovation_var, kv = pv / innovation_var;
        double step = s[POS + i] - z[i];
        s[POS + i] = s[POS + i] - kp * step;
        s[VEL + i] = s[VEL + i] - kv * step;
        s[PP + i] = pp - kp * pp;
        s[PV + i] = pv - kp * pv;
        s[VV + i] = s[VV + i] - kv * pv;
    }
}

/* Signed corners x1, y1, -x2, -y2 of a state (what the overlap test reads). */
static void kalman_signed(const double *s, double *out) {
    double w = s[POS + 2] * s[POS + 3], h = s[POS + 3];
    out[0] = s[POS] - 0.5 * w;
    out[1] = s[POS + 1] - 0.5 * h;
    out[2] = -s[POS] - 0.5 * w;
    out[3] = -s[POS + 1] - 0.5 * h;
}

/* Corners x1 y1 x2 y2 (n, 4), or signed. */
EDGENODE_EXPORT void edgenode_kalman_corners(const double *state, int64_t n, double *out, int64_t sign) {
    for (int64_t t = 0; t < n; t++) {
        kalman_signed(state + t * STATE_WIDTH, out + 4 * t);
        if (!sign) {
            out[4 * t + 2] = -out[4 * t + 2];
            out[4 * t + 3] = -out[4 * t + 3];
        }
    }
}

/* Start m filters from (m, 4) XYAH rows after the n existing ones; returns the new count, -1 past capacity. */
EDGENODE_EXPORT int64_t edgenode_kalman_add(const double *k, double *state, int64_t n, int64_t capacity,
                                            const double *xyah, int64_t m) {
    if (n < 0 || m < 0 || n > capacity || m > capacity - n) return -1;
    for (int64_t j = 0; j < m; j++) kalman_start(k, state + (n + j) * STATE_WIDTH, xyah + 4 * j);
    return n + m;
}

EDGENODE_EXPORT void edgenode_kalman_predict(const double *k, double *state, int64_t n, int64_t elapsed_ns) {
    kalman_predict(k, state, n, elapsed_ns);
}

/* Correct filters tracks[j] with (m, 4) XYAH rows; -1 (nothing done) when an index is out of range. */
EDGENODE_EXPORT int64_t edgenode_kalman_update(const double *k, double *state, int64_t n, const int64_t *tracks,
                                               const double *xyah, int64_t m) {
    for (int64_t j = 0; j < m; j++)
        if (tracks[j] < 0 || tracks[j] >= n) return -1;
    for (int64_t j = 0; j < m; j++) kalman_correct(k, state + tracks[j] * STATE_WIDTH, xyah + 4 * j);
    return 0;
}

/* --- overlap ------------------------------------------------------------------------------------------------- */

/* Branch-free maximum and minimum (maxsd/minsd, fcsel) for numbers that are not NaN. */
static inline double max_of(double a, double b) { return a > b ? a : b; }
static inline double min_of(double a, double b) { return a < b ? a : b; }

/* IoU of boxes given as signed corners with their areas, as numpy computed it (assignment.iou_signed).
 * A NaN corner makes its area NaN, and a NaN area makes numpy's IoU NaN: so NaN is settled first, and the
 * rest runs without NaN-aware (branching) comparisons. Signed zeros may differ from numpy's, which no
 * comparison or cost can tell apart. */
static inline double iou_signed(const double *a, double a_area, const double *b, double b_area) {
    if (a_area != a_area || b_area != b_area) return NAN;
    double ox = max_of(a[0], b[0]) + max_of(a[2], b[2]); /* minus the overlap in x */
    double oy = max_of(a[1], b[1]) + max_of(a[3], b[3]);
    double inter = min_of(ox, 0.0) * min_of(oy, 0.0);
    double union_area = (a_area + b_area) - inter;
    /* Most pairs do not overlap: skip the division, whose result is then inter (a zero) or NaN. */
    if (inter == 0.0) return union_area != union_area ? union_area : inter;
    return inter / np_max(union_area, MIN_UNION);
}

static inline double signed_area(const double *s) { return (s[0] + s[2]) * (s[1] + s[3]); }

/* --- matching ------------------------------------------------------------------------------------------------ */

/* LAPJV over n contested pairs, in Python (edgenode.core.assignment): writes the matched pairs (at most
 * out_capacity), returns their count, or -1 when it failed (the Python side keeps the error under token, the
 * caller's own number). */
typedef int64_t (*solver_fn)(int64_t token, int64_t n, const int64_t *rows, const int64_t *cols, const double *costs,
                             double half, int64_t out_capacity, int64_t *out_rows, int64_t *out_cols);

/* Bump allocation from caller-owned scratch; NULL when it would overrun. */
typedef struct {
    int64_t *i64;
    int64_t i64_left;
} arena;

static int64_t *take(arena *a, int64_t count) {
    if (count < 0 || count > a->i64_left) return NULL;
    int64_t *p = a->i64;
    a->i64 += count;
    a->i64_left -= count;
    return p;
}

#define ERR_SCRATCH -2
#define ERR_SOLVER -3
#define ERR_INPUT -4
/* Added to track_update's result when tracks expired. */
#define EXPIRED ((int64_t)1 << 32)

/* Enumeration budget of one contested group (matchings tried), and its most rows. */
#define GROUP_BUDGET 4096
#define GROUP_ROWS 24

typedef struct {
    const int64_t *pair_col;
    const double *gain;
    const int64_t *row_first; /* per group row: first option index into opt */
    const int64_t *row_count;
    const int64_t *opt; /* pair indices */
    int64_t rows;
    int64_t *used;      /* per column: taken by the matching being tried */
    int64_t *pick;      /* current pair per group row, -1: none */
    int64_t *best_pick;
    double best, second;
    int64_t tried;
} search;

static void enumerate(search *s, int64_t row, double gain) {
    if (s->tried > GROUP_BUDGET) return;
    if (row == s->rows) {
        s->tried++;
        if (gain > s->best) {
            s->second = s->best;
            s->best = gain;
            memcpy(s->best_pick, s->pick, (size_t)s->rows * sizeof(int64_t));
        } else if (gain > s->second) {
            s->second = gain;
        }
        return;
    }
    s->pick[row] = -1;
    enumerate(s, row + 1, gain);
    for (int64_t o = 0; o < s->row_count[row]; o++) {
        int64_t p = s->opt[s->row_first[row] + o];
        int64_t col = s->pair_col[p];
        if (s->used[col]) continue;
        s->used[col] = 1;
        s->pick[row] = p;
        enumerate(s, row + 1, gain + s->gain[p]);
        s->used[col] = 0;
        s->pick[row] = -1;
    }
}

/* Scratch (int64 entries) match_pairs needs for n pairs over row and column spaces. */
static int64_t match_scratch(int64_t n, int64_t row_space, int64_t col_space) {
    return 10 * n + 3 * (row_space + 1) + 4 * (col_space + 1) + 4 * GROUP_ROWS + 16;
}

/* The optimal matching among candidate pairs (rows[i], cols[i]) (no pair twice) costing costs[i], each at
 * most cost_limit: what LAPJV returns for them with cost_limit (edgenode.core.assignment.linear_assignment).
 * Pairs whose row and column are in no other pair are matched directly; the contested rest splits into
 * independent groups, each solved by trying its matchings; a group too big to try, or whose best matching
 * beats its runner-up by no clear margin (LAPJV's tie-breaking decides then), sends all contested pairs to
 * LAPJV through solve. Writes the matched pairs to out_rows/out_cols (capacity n), returns their count. */
static int64_t match_pairs(const int64_t *rows, const int64_t *cols, const double *costs, int64_t n,
                           double cost_limit, int64_t row_space, int64_t col_space, arena scratch, solver_fn solve,
                           int64_t token, int64_t *out_rows, int64_t *out_cols, int64_t out_capacity) {
    if (n <= 0) return 0;
    int64_t *row_count = take(&scratch, row_space + 1), *col_count = take(&scratch, col_space + 1);
    if (!row_count || !col_count) return ERR_SCRATCH;
    memset(row_count, 0, (size_t)(row_space + 1) * sizeof(int64_t));
    memset(col_count, 0, (size_t)(col_space + 1) * sizeof(int64_t));
    for (int64_t p = 0; p < n; p++) {
        if (rows[p] < 0 || rows[p] >= row_space || cols[p] < 0 || cols[p] >= col_space) return ERR_INPUT;
        row_count[rows[p]]++;
        col_count[cols[p]]++;
    }
    int64_t matched = 0, contested = 0;
    int64_t *contest = take(&scratch, n);
    if (!contest) return ERR_SCRATCH;
    for (int64_t p = 0; p < n; p++) {
        if (row_count[rows[p]] == 1 && col_count[cols[p]] == 1) {
            if (matched >= out_capacity) return ERR_SCRATCH; /* a matching: never more than min(rows, cols) */
            out_rows[matched] = rows[p];
            out_cols[matched] = cols[p];
            matched++;
        } else {
            contest[contested++] = p;
        }
    }
    if (!contested) return matched;
    /* Gains of matching a pair instead of leaving its row and column apart (assignment._half). */
    double margin = 1e-9 * fmax(1.0, fabs(cost_limit));
    double half = 0.5 * (cost_limit + margin);
    double double_half = 2.0 * half;
    double *gain = (double *)take(&scratch, n);
    /* CSR of the contested pairs by row and by column. */
    int64_t *row_start = take(&scratch, row_space + 1), *col_start = take(&scratch, col_space + 1);
    int64_t *by_row = take(&scratch, contested), *by_col = take(&scratch, contested);
    int64_t *row_group = take(&scratch, row_space), *queue = take(&scratch, contested);
    int64_t *group_first = take(&scratch, GROUP_ROWS), *group_count = take(&scratch, GROUP_ROWS);
    int64_t *pick = take(&scratch, 2 * GROUP_ROWS), *opt = take(&scratch, contested);
    int64_t *col_seen = take(&scratch, col_space), *used = take(&scratch, col_space);
    if (!gain || !row_start || !col_start || !by_row || !by_col || !row_group || !queue || !group_first ||
        !group_count || !pick || !opt || !col_seen || !used)
        return ERR_SCRATCH;
    memset(row_start, 0, (size_t)(row_space + 1) * sizeof(int64_t));
    memset(col_start, 0, (size_t)(col_space + 1) * sizeof(int64_t));
    for (int64_t c = 0; c < contested; c++) {
        int64_t p = contest[c];
        gain[p] = double_half - costs[p];
        row_start[rows[p] + 1]++;
        col_start[cols[p] + 1]++;
    }
    for (int64_t r = 0; r < row_space; r++) row_start[r + 1] += row_start[r];
    for (int64_t c = 0; c < col_space; c++) col_start[c + 1] += col_start[c];
    /* Fill (row_count and col_count reused as cursors). */
    for (int64_t r = 0; r < row_space; r++) row_count[r] = row_start[r];
    for (int64_t c = 0; c < col_space; c++) col_count[c] = col_start[c];
    for (int64_t c = 0; c < contested; c++) {
        int64_t p = contest[c];
        by_row[row_count[rows[p]]++] = p;
        by_col[col_count[cols[p]]++] = p;
    }
    for (int64_t r = 0; r < row_space; r++) row_group[r] = -1;
    for (int64_t c = 0; c < col_space; c++) col_seen[c] = used[c] = 0;
    int64_t solved = matched, groups = 0;
    int lapjv = 0;
    for (int64_t c = 0; c < contested && !lapjv; c++) {
        int64_t start = rows[contest[c]];
        if (row_group[start] >= 0) continue;
        /* The group: every row reachable through shared columns, in discovery order. */
        int64_t head = 0, tail = 0;
        queue[tail++] = start;
        row_group[start] = groups;
        while (head < tail) {
            int64_t r = queue[head++];
            for (int64_t i = row_start[r]; i < row_start[r + 1]; i++) {
                int64_t col = cols[by_row[i]];
                if (col_seen[col]) continue;
                col_seen[col] = 1;
                for (int64_t j = col_start[col]; j < col_start[col + 1]; j++) {
                    int64_t other = rows[by_col[j]];
                    if (row_group[other] < 0) {
                        row_group[other] = groups;
                        queue[tail++] = other;
                    }
                }
            }
        }
        groups++;
        if (tail > GROUP_ROWS) {
            lapjv = 1;
            break;
        }
        int64_t options = 0;
        for (int64_t g = 0; g < tail; g++) {
            int64_t r = queue[g];
            group_first[g] = options;
            group_count[g] = row_start[r + 1] - row_start[r];
            for (int64_t i = row_start[r]; i < row_start[r + 1]; i++) opt[options++] = by_row[i];
        }
        search s = {cols, gain, group_first, group_count, opt, tail, used, pick, pick + GROUP_ROWS,
                    0.0, 0.0, 0};
        enumerate(&s, 0, 0.0);
        if (s.tried > GROUP_BUDGET || !(s.best - s.second > margin)) {
            lapjv = 1;
            break;
        }
        for (int64_t g = 0; g < tail; g++) {
            int64_t p = s.best_pick[g];
            if (p >= 0) {
                if (solved >= out_capacity) return ERR_SCRATCH;
                out_rows[solved] = rows[p];
                out_cols[solved] = cols[p];
                solved++;
            }
        }
    }
    if (!lapjv) return solved;
    /* LAPJV decides, over every contested pair at once. */
    int64_t *block_rows = take(&scratch, contested), *block_cols = take(&scratch, contested);
    double *block_costs = (double *)take(&scratch, contested);
    if (!block_rows || !block_cols || !block_costs) return ERR_SCRATCH;
    for (int64_t c = 0; c < contested; c++) {
        block_rows[c] = rows[contest[c]];
        block_cols[c] = cols[contest[c]];
        block_costs[c] = costs[contest[c]];
    }
    if (!solve) return ERR_SOLVER;
    int64_t room = out_capacity - matched;
    int64_t got = solve(token, contested, block_rows, block_cols, block_costs, half, room, out_rows + matched,
                        out_cols + matched);
    if (got < 0 || got > room) return ERR_SOLVER;
    return matched + got;
}

EDGENODE_EXPORT int64_t edgenode_match_scratch(int64_t n, int64_t row_space, int64_t col_space) {
    return match_scratch(n, row_space, col_space);
}

/* match_pairs for Python (edgenode.core.assignment.linear_assignment); scratch of edgenode_match_scratch. The
 * solver's token is the scratch's address. */
EDGENODE_EXPORT int64_t edgenode_match_pairs(const int64_t *rows, const int64_t *cols, const double *costs, int64_t n,
                                             double cost_limit, int64_t row_space, int64_t col_space,
                                             int64_t *scratch, int64_t scratch_len, solver_fn solve,
                                             int64_t *out_rows, int64_t *out_cols, int64_t out_capacity) {
    if (n < 0 || row_space < 0 || col_space < 0) return ERR_INPUT;
    if (scratch_len < match_scratch(n, row_space, col_space)) return ERR_SCRATCH;
    arena a = {scratch, scratch_len};
    return match_pairs(rows, cols, costs, n, cost_limit, row_space, col_space, a, solve, (int64_t)scratch, out_rows,
                       out_cols, out_capacity);
}

/* --- ByteTracker's update ------------------------------------------------------------------------------------ */

/* The tracker's context (int64), laid out by edgenode.kernels.track. Pointers are addresses of buffers the
 * Python side owns, with their capacities. */
enum {
    C_FILTER_PTR = 0,  /* int64[3], the Kalman filter's header: track count, state address, state capacity */
    C_CAPACITY,        /* tracks the tracker's per-track buffers hold */
    C_BOX_CAPACITY,    /* boxes the per-box buffers hold */
    C_PAIR_CAPACITY,   /* box-track pairs the overlap and pair buffers hold */
    C_SCRATCH_LEN,     /* int64 entries of scratch */
    C_LAST_NS,         /* camera time of the last update */
    C_HAS_LAST,
    C_LIFESPAN_NS,
    C_FLAGS,           /* F_* */
    C_LAST_BOX_PTR,    /* double[capacity][4]: last matched box, signed corners */
    C_INFO_PTR,        /* int64[capacity][3]: created_ns, match count, last matched ns */
    C_BOXES_PTR,       /* double[box capacity][4]: this frame's boxes x1 y1 x2 y2 */
    C_SCORES_PTR,      /* double[box capacity] */
    C_OUT_PTR,         /* int64[box capacity][3] out: track index (-1: none), lifetime, created_ns */
    C_KEPT_PTR,        /* int64[capacity] out: indices of the tracks kept by expiry */
    C_OVERLAP_PTR,     /* double[pair capacity] */
    C_SCRATCH_PTR,     /* int64[scratch_len] */
    C_KALMAN_PTR,      /* double[K_SIZE] */
    C_PARAMS_PTR,      /* double[P_SIZE] */
    C_SOLVER_PTR,      /* solver_fn */
    C_KEPT,            /* out: tracks kept by expiry, -1 when none expired */
    C_STARTED,         /* out: tracks started */
    C_SIZE
};

enum { P_HIGH = 0, P_LOW, P_IOU, P_SIZE };

enum {
    F_NO_RECOVERY = 1,     /* no pass 3 */
    F_LATE_EXPIRY = 2,     /* expire after matching */
    F_ANY_SCORE_PASS = 4,  /* after pass 3, the high boxes left against the tracks left, by prediction */
    F_EDGEFIRST_COST = 8,  /* cost (1.5 - score) + (1.5 - IoU), limit 1000 */
};

/* Per-box scratch (doubles): signed corners 4, area, xyah 4. */
#define BOX_WIDTH 9

EDGENODE_EXPORT int64_t edgenode_track_scratch(int64_t boxes, int64_t tracks, int64_t pairs) {
    /* pair rows, cols, costs; matched rows, cols; box flags and maps (3 per box); track maps (2 per track);
     * per-box 9; predicted (5 per track); the matcher's own */
    return 3 * pairs + 2 * (boxes < tracks ? boxes : tracks) + 3 * boxes + 2 * tracks + BOX_WIDTH * boxes
           + 5 * tracks + match_scratch(pairs, boxes, tracks) + 16;
}

static int64_t expire(int64_t *ctx, double *state, int64_t n, int64_t now) {
    int64_t lifespan = ctx[C_LIFESPAN_NS];
    int64_t *info = (int64_t *)ctx[C_INFO_PTR], *kept = (int64_t *)ctx[C_KEPT_PTR];
    double *last = (double *)ctx[C_LAST_BOX_PTR];
    ctx[C_KEPT] = -1;
    if (now < INT64_MIN + lifespan) return n;
    int64_t oldest = now - lifespan, k = 0;
    for (int64_t t = 0; t < n; t++)
        if (info[3 * t + 2] >= oldest) kept[k++] = t;
    if (k == n) return n;
    for (int64_t j = 0; j < k; j++) {
        int64_t t = kept[j];
        if (t == j) continue;
        memcpy(state + j * STATE_WIDTH, state + t * STATE_WIDTH, STATE_WIDTH * sizeof(double));
        memcpy(last + 4 * j, last + 4 * t, 4 * sizeof(double));
        memcpy(info + 3 * j, info + 3 * t, 3 * sizeof(int64_t));
    }
    ctx[C_KEPT] = k;
    return k;
}

static double pair_cost(int64_t flags, double iou, double score) {
    return (flags & F_EDGEFIRST_COST) ? (1.5 - score) + (1.5 - iou) : 1.0 - iou;
}

/* ByteTracker.update after its argument checks: this frame's count boxes and scores are in the context's
 * buffers (the solver's token is the context's address). Writes per box its track (index after this update), lifetime and created_ns. Returns the number
 * of tracks started, plus EXPIRED when tracks expired (C_KEPT says how many were kept and C_KEPT_PTR
 * which), or a negative error (too small buffers, or the LAPJV solver failed). */
EDGENODE_EXPORT int64_t edgenode_track_update(int64_t *ctx, int64_t count, int64_t now) {
    /* The filter's header: read here, as the filter may have grown its state since the last call. */
    int64_t *filter = (int64_t *)ctx[C_FILTER_PTR], *size = filter;
    int64_t n = *size, flags = ctx[C_FLAGS];
    int64_t capacity = ctx[C_CAPACITY] < filter[2] ? ctx[C_CAPACITY] : filter[2];
    const double *k = (const double *)ctx[C_KALMAN_PTR], *params = (const double *)ctx[C_PARAMS_PTR];
    double *state = (double *)filter[1], *last = (double *)ctx[C_LAST_BOX_PTR];
    int64_t *info = (int64_t *)ctx[C_INFO_PTR], *out = (int64_t *)ctx[C_OUT_PTR];
    const double *boxes = (const double *)ctx[C_BOXES_PTR], *scores = (const double *)ctx[C_SCORES_PTR];
    double *overlap = (double *)ctx[C_OVERLAP_PTR];
    solver_fn solve = (solver_fn)ctx[C_SOLVER_PTR];
    int64_t token = (int64_t)ctx;
    ctx[C_KEPT] = -1;
    ctx[C_STARTED] = 0;
    if (count < 0 || count > ctx[C_BOX_CAPACITY] || n < 0 || n > capacity || count > capacity - n ||
        n * count > ctx[C_PAIR_CAPACITY])
        return ERR_INPUT;
    if (ctx[C_SCRATCH_LEN] < edgenode_track_scratch(count, n, n * count)) return ERR_SCRATCH;
    if (n) {
        if (!(flags & F_LATE_EXPIRY)) n = expire(ctx, state, n, now);
        if (ctx[C_HAS_LAST]) {
            int64_t elapsed;
            if (__builtin_sub_overflow(now, ctx[C_LAST_NS], &elapsed)) elapsed = now > ctx[C_LAST_NS] ? INT64_MAX : 0;
            kalman_predict(k, state, n, elapsed);
        }
    }
    *size = n;
    ctx[C_LAST_NS] = now;
    ctx[C_HAS_LAST] = 1;
    if (!count) goto late;
    double high_score = params[P_HIGH], low_score = params[P_LOW], least = params[P_IOU];
    double limit = (flags & F_EDGEFIRST_COST) ? 1000.0 : 1.0 - least;
    int64_t started = 0;
    for (int64_t d = 0; d < count; d++) {
        out[3 * d] = -1;
        if (scores[d] >= high_score) started++;
    }
    if (!n && !started) goto late;

    arena a = {(int64_t *)ctx[C_SCRATCH_PTR], ctx[C_SCRATCH_LEN]};
    int64_t pairs_cap = n * count, matches_cap = n < count ? n : count; /* a matching: at most min(boxes, tracks) */
    int64_t *pair_rows = take(&a, pairs_cap), *pair_cols = take(&a, pairs_cap);
    double *pair_costs = (double *)take(&a, pairs_cap);
    int64_t *match_rows = take(&a, matches_cap), *match_cols = take(&a, matches_cap);
    int64_t *box_track = take(&a, count), *high = take(&a, count), *index_box = take(&a, count);
    int64_t *track_box = take(&a, n), *index_track = take(&a, n);
    double *box = (double *)take(&a, BOX_WIDTH * count), *predicted = (double *)take(&a, 5 * n);
    if (!pair_rows || !pair_cols || !pair_costs || !match_rows || !match_cols || !box_track || !high || !index_box ||
        !track_box || !index_track || !box || !predicted)
        return ERR_SCRATCH;
    /* The matcher gets what is left. */
    for (int64_t d = 0; d < count; d++) {
        const double *b = boxes + 4 * d;
        double *p = box + BOX_WIDTH * d;
        double w = b[2] - b[0], h = b[3] - b[1];
        p[0] = b[0];
        p[1] = b[1];
        p[2] = -b[2];
        p[3] = -b[3];
        p[4] = w * h;
        p[5] = 0.5 * b[0] + 0.5 * b[2];
        p[6] = 0.5 * b[1] + 0.5 * b[3];
        w = np_max(w, MIN_SIDE);
        h = np_max(h, MIN_SIDE);
        p[7] = w / h;
        p[8] = h;
        box_track[d] = -1;
        high[d] = scores[d] >= high_score;
    }
    int64_t high_matches = 0, matches = 0;
    if (n) {
        for (int64_t t = 0; t < n; t++) {
            track_box[t] = -1;
            kalman_signed(state + t * STATE_WIDTH, predicted + 5 * t);
            predicted[5 * t + 4] = signed_area(predicted + 5 * t);
        }
        /* Pass 1: high boxes against every track's prediction. */
        int64_t pairs = 0;
        for (int64_t d = 0; d < count; d++) {
            const double *p = box + BOX_WIDTH * d;
            for (int64_t t = 0; t < n; t++) {
                double iou = iou_signed(p, p[4], predicted + 5 * t, predicted[5 * t + 4]);
                overlap[d * n + t] = iou;
                if (iou >= least && high[d]) {
                    pair_rows[pairs] = d;
                    pair_cols[pairs] = t;
                    pair_costs[pairs] = pair_cost(flags, iou, scores[d]);
                    pairs++;
                }
            }
        }
        int64_t got = match_pairs(pair_rows, pair_cols, pair_costs, pairs, limit, count, n, a, solve, token, match_rows,
                                  match_cols, matches_cap);
        if (got < 0) return got;
        for (int64_t m = 0; m < got; m++) {
            box_track[match_rows[m]] = match_cols[m];
            track_box[match_cols[m]] = match_rows[m];
        }
        high_matches = matches = got;
        /* Pass 2: low boxes against the predictions of the tracks pass 1 left. */
        if (matches < n) {
            pairs = 0;
            for (int64_t d = 0; d < count; d++) {
                if (high[d] || !(scores[d] >= low_score)) continue;
                for (int64_t t = 0; t < n; t++) {
                    double iou = overlap[d * n + t];
                    if (iou >= least && track_box[t] < 0) {
                        pair_rows[pairs] = d;
                        pair_cols[pairs] = t;
                        pair_costs[pairs] = pair_cost(flags, iou, scores[d]);
                        pairs++;
                    }
                }
            }
            got = match_pairs(pair_rows, pair_cols, pair_costs, pairs, limit, count, n, a, solve, token, match_rows,
                              match_cols, matches_cap);
            if (got < 0) return got;
            for (int64_t m = 0; m < got; m++) {
                box_track[match_rows[m]] = match_cols[m];
                track_box[match_cols[m]] = match_rows[m];
            }
            matches += got;
        }
        /* Pass 3: high boxes still unmatched against the last matched boxes of the tracks still unmatched. */
        if (!(flags & F_NO_RECOVERY) && started > high_matches && matches < n && high_matches < n) {
            int64_t boxes_left = 0, tracks_left = 0;
            for (int64_t d = 0; d < count; d++)
                if (high[d] && box_track[d] < 0) index_box[boxes_left++] = d;
            for (int64_t t = 0; t < n; t++)
                if (track_box[t] < 0) index_track[tracks_left++] = t;
            pairs = 0;
            for (int64_t i = 0; i < boxes_left; i++) {
                int64_t d = index_box[i];
                const double *p = box + BOX_WIDTH * d;
                for (int64_t j = 0; j < tracks_left; j++) {
                    const double *l = last + 4 * index_track[j];
                    double iou = iou_signed(p, p[4], l, signed_area(l));
                    if (iou >= least) {
                        pair_rows[pairs] = i;
                        pair_cols[pairs] = j;
                        pair_costs[pairs] = pair_cost(flags, iou, scores[d]);
                        pairs++;
                    }
                }
            }
            got = match_pairs(pair_rows, pair_cols, pair_costs, pairs, limit, boxes_left, tracks_left, a, solve,
                              token, match_rows, match_cols, matches_cap);
            if (got < 0) return got;
            for (int64_t m = 0; m < got; m++) {
                int64_t d = index_box[match_rows[m]], t = index_track[match_cols[m]];
                box_track[d] = t;
                track_box[t] = d;
            }
            matches += got;
            high_matches += got;
        }
        /* Ablation: the high boxes left against the tracks left, by prediction (EdgeFirst's score-0 pass). */
        if ((flags & F_ANY_SCORE_PASS) && matches < n && started > high_matches) {
            pairs = 0;
            for (int64_t d = 0; d < count; d++) {
                if (!high[d] || box_track[d] >= 0) continue;
                for (int64_t t = 0; t < n; t++) {
                    double iou = overlap[d * n + t];
                    if (iou >= least && track_box[t] < 0) {
                        pair_rows[pairs] = d;
                        pair_cols[pairs] = t;
                        pair_costs[pairs] = pair_cost(flags, iou, scores[d]);
                        pairs++;
                    }
                }
            }
            got = match_pairs(pair_rows, pair_cols, pair_costs, pairs, limit, count, n, a, solve, token, match_rows,
                              match_cols, matches_cap);
            if (got < 0) return got;
            for (int64_t m = 0; m < got; m++) {
                box_track[match_rows[m]] = match_cols[m];
                track_box[match_cols[m]] = match_rows[m];
            }
            matches += got;
        }
        /* Correct the matched tracks. */
        for (int64_t d = 0; d < count; d++) {
            int64_t t = box_track[d];
            if (t < 0) continue;
            int64_t *ti = info + 3 * t;
            out[3 * d] = t;
            out[3 * d + 1] = ti[1];
            out[3 * d + 2] = ti[0];
            ti[1] += 1;
            ti[2] = now;
            const double *p = box + BOX_WIDTH * d;
            memcpy(last + 4 * t, p, 4 * sizeof(double));
            kalman_correct(k, state + t * STATE_WIDTH, p + 5);
        }
    }
    /* Start a track for every high box left. */
    for (int64_t d = 0; d < count; d++) {
        if (!high[d] || box_track[d] >= 0) continue;
        const double *p = box + BOX_WIDTH * d;
        int64_t t = n++;
        kalman_start(k, state + t * STATE_WIDTH, p + 5);
        memcpy(last + 4 * t, p, 4 * sizeof(double));
        info[3 * t] = now;
        info[3 * t + 1] = 1;
        info[3 * t + 2] = now;
        out[3 * d] = t;
        out[3 * d + 1] = 1;
        out[3 * d + 2] = now;
        ctx[C_STARTED]++;
    }
    *size = n;
late:
    if ((flags & F_LATE_EXPIRY) && n) *size = expire(ctx, state, n, now);
    return ctx[C_STARTED] + (ctx[C_KEPT] >= 0 ? EXPIRED : 0);
}

EDGENODE_EXPORT int64_t edgenode_track_layout(int64_t which) {
    switch (which) {
    case 0: return C_SIZE;
    case 1: return P_SIZE;
    case 2: return K_SIZE;
    case 3: return STATE_WIDTH;
    default: return -1;
    }
}
