/* Detection decoding in one call per frame: the candidate scan, the cap, the NMS order, the boxes, the
 * greedy NMS and the kept rows (edgenode/kernels/decode.py is its ctypes side, edgenode/core/yolo.py and
 * modelpack.py build its plans).
 *
 * What it computes is what the numpy decoders computed before it, operation for operation, so that the
 * results are the same bits:
 * - a candidate is an anchor whose best class score reaches the threshold, compared in the output's own
 *   number domain (an integer code for 8-bit outputs); a NaN among an anchor's scores makes it no
 *   candidate (numpy's max propagates NaN);
 * - candidates are visited in NMS order: descending score, ties in anchor order; above the cap only the
 *   first `cap` of that order are kept;
 * - boxes are dequantised through the output's table (8-bit) or as (v - zero) * scale in float32, and centre
 *   boxes become corners as the product with the 4x4 matrix did, term by term in float32 (no FMA: the
 *   library is built with -ffp-contract=off);
 * - greedy NMS drops a later box when intersection > iou * union in float32, with the overlap taken from
 *   rows x1, y1, -x2, -y2 and NaN propagated as numpy's maximum and minimum do (a NaN never suppresses);
 * - kept boxes are divided by the input size when the plan says so (or when one of them has a coordinate
 *   above 2, or NaN: pixel boxes).
 *
 * Kernels never allocate: the plan holds the caller's scratch and output buffers with their capacities. */
#include <string.h>

#include "kernels.h"

enum { TYPE_F32 = 0, TYPE_I8 = 1, TYPE_U8 = 2 };
enum { BOXES_XYWH = 0, BOXES_XYXY = 1, BOXES_GIVEN = 2 };
enum { NORMALISE_NEVER = 0, NORMALISE_ALWAYS = 1, NORMALISE_PIXELS = 2 };
enum { ERROR_PLAN = -1, ERROR_SCRATCH = -2, ERROR_COUNT = -3 };

#define PIXEL_COORDINATE 2.0f /* a kept coordinate above this: pixel boxes (HAL's check) */
#define RADIX_BITS 11
#define RADIX_BUCKETS (1 << RADIX_BITS)

/* One output's values: element type and dequantisation. Offsets and strides count elements. */
typedef struct {
    int64_t type;       /* TYPE_* */
    const float *table; /* 8-bit types: the real value of each code, indexed by its unsigned bits */
    double scale;       /* float32 outputs: real = (v - zero) * scale when scale != 0 (float32 values) */
    double zero;
} edgenode_values;

/* Mirrored by edgenode.kernels.decode.Plan: keep the two in step. */
typedef struct {
    /* scores: `rows` class rows over `anchors` anchors */
    edgenode_values score;
    int64_t rows, anchors, anchor_stride;
    const int64_t *row_offsets; /* offset of each scored row (its anchor 0) */
    const int64_t *class_ids;   /* class id of each scored row */
    double threshold;           /* raw domain: a candidate's best score >= threshold */
    /* YOLOv5: score = objectness x class, objectness (in the boxes' output) reaching its raw threshold first */
    int64_t objectness_offset; /* -1: no objectness */
    double objectness_threshold, real_threshold;
    /* boxes: four values per anchor */
    edgenode_values box;
    int64_t box_format, box_anchor_stride;
    int64_t box_offsets[4];
    /* NMS and results */
    double iou;
    int64_t class_aware, max_boxes, cap;
    int64_t normalise;
    double width, height;
    void *scratch;
    int64_t scratch_bytes;
    float *out_boxes;      /* max_boxes x 4 */
    float *out_scores;     /* max_boxes */
    int32_t *out_classes;  /* max_boxes */
    int64_t *out_anchors;  /* max_boxes */
    int64_t *candidates;   /* cap: the candidates' anchors in NMS order (BOXES_GIVEN) */
} edgenode_decode_plan;

/* Its size, which the ctypes mirror checks its own against. */
EDGENODE_EXPORT int64_t edgenode_decode_plan_bytes(void) { return (int64_t)sizeof(edgenode_decode_plan); }

/* ---- scratch ---- */

static int64_t align8(int64_t bytes) { return (bytes + 7) & ~(int64_t)7; }

/* A block of anchors' best scores, per-anchor candidate arrays (anchors entries), then per-candidate arrays
 * (cap entries) in NMS order. */
typedef struct {
    void *best;          /* SCAN_BLOCK x 4 bytes: a block's best raw scores */
    int32_t *index;      /* anchors: candidate anchors, in anchor order */
    float *value;        /* anchors: their best scores (raw, as float: exact for 8-bit codes) */
    int32_t *row;        /* anchors: their best rows (the first holding the best score) */
    uint32_t *histogram; /* RADIX_BUCKETS */
    uint64_t *keys;      /* cap: sort keys */
    uint64_t *merge;     /* cap */
    int32_t *sorted_anchor;
    float *sorted_value;
    int32_t *sorted_row;
    float *corners;      /* cap x 4: x1, y1, x2, y2 */
    float *x1, *y1, *negative_x2, *negative_y2, *areas; /* cap each: the NMS's rows */
    int32_t *labels;     /* cap */
    int32_t *dead;       /* cap */
    int32_t *kept;       /* cap */
} scratch_t;

#define SCAN_BLOCK 512 /* anchors whose best scores are taken together */

static int64_t carve(scratch_t *s, void *base, int64_t anchors, int64_t cap) {
    char *at = base;
    int64_t used = 0;
#define TAKE(field, count, type)                                        \
    do {                                                                \
        if (at) s->field = (type *)(void *)(at + used);                 \
        used += align8((int64_t)(count) * (int64_t)sizeof(type));       \
    } while (0)
    TAKE(best, SCAN_BLOCK * 4, char);
    TAKE(index, anchors, int32_t);
    TAKE(value, anchors, float);
    TAKE(row, anchors, int32_t);
    TAKE(histogram, RADIX_BUCKETS, uint32_t);
    TAKE(keys, cap, uint64_t);
    TAKE(merge, cap, uint64_t);
    TAKE(sorted_anchor, cap, int32_t);
    TAKE(sorted_value, cap, float);
    TAKE(sorted_row, cap, int32_t);
    TAKE(corners, cap * 4, float);
    TAKE(x1, cap, float);
    TAKE(y1, cap, float);
    TAKE(negative_x2, cap, float);
    TAKE(negative_y2, cap, float);
    TAKE(areas, cap, float);
    TAKE(labels, cap, int32_t);
    TAKE(dead, cap, int32_t);
    TAKE(kept, cap, int32_t);
#undef TAKE
    return used;
}

/* Bytes of scratch a plan over `anchors` anchors (or generic NMS over that many boxes) with `cap` needs. */
EDGENODE_EXPORT int64_t edgenode_decode_scratch_bytes(int64_t anchors, int64_t cap) {
    scratch_t unused;
    if (anchors < 0 || cap < 0) return ERROR_PLAN;
    return carve(&unused, NULL, anchors, cap);
}

/* ---- values ---- */

static inline float real_value(const edgenode_values *v, const void *data, int64_t at) {
    switch (v->type) {
    case TYPE_I8: return v->table[(uint8_t)((const int8_t *)data)[at]];
    case TYPE_U8: return v->table[((const uint8_t *)data)[at]];
    default: {
        float x = ((const float *)data)[at];
        if (v->scale != 0.0) x = (x - (float)v->zero) * (float)v->scale;
        return x;
    }
    }
}

static inline float raw_value(int64_t type, const void *data, int64_t at) {
    switch (type) {
    case TYPE_I8: return (float)((const int8_t *)data)[at];
    case TYPE_U8: return (float)((const uint8_t *)data)[at];
    default: return ((const float *)data)[at];
    }
}

/* ---- candidates ---- */

/* The anchors whose best score reaches the threshold, with that score and the first row holding it (numpy's
 * argmax), in anchor order. numpy's max propagates NaN: an anchor with a NaN score is no candidate.
 *
 * Channel-major scores (anchor stride 1, the usual [1, 4 + classes, anchors] head) are taken a block of
 * anchors at a time: the block's running best over every row, eight rows per pass (vectorised; a NaN
 * there is passed over, `v > best` being false), then, for the block's anchors reaching the threshold
 * while its rows are still in cache, the first row holding the best and the NaN check. */
#define DEFINE_SCAN(NAME, T, IS_NAN, HAS_NAN)                                                                        \
    static int64_t NAME(const edgenode_decode_plan *p, const T *scores, const scratch_t *s) {                   \
        const int64_t anchors = p->anchors, rows = p->rows, stride = p->anchor_stride;                         \
        const int64_t *offsets = p->row_offsets;                                                                \
        const T threshold = (T)p->threshold;                                                                    \
        int64_t count = 0;                                                                                      \
        if (stride != 1) { /* anchor-major: each anchor's scores in turn */                                     \
            for (int64_t a = 0; a < anchors; a++) {                                                             \
                const T *column = scores + a * stride;                                                          \
                T best = column[offsets[0]];                                                                    \
                int32_t best_row = 0;                                                                           \
                int nan = IS_NAN(best);                                                                         \
                for (int64_t r = 1; r < rows; r++) {                                                            \
                    const T v = column[offsets[r]];                                                             \
                    nan |= IS_NAN(v);                                                                           \
                    best_row = v > best ? (int32_t)r : best_row;                                                \
                    best = v > best ? v : best;                                                                 \
                }                                                                                               \
                if (nan || !(best >= threshold)) continue;                                                      \
                s->index[count] = (int32_t)a;                                                                   \
                s->value[count] = (float)best;                                                                  \
                s->row[count] = best_row;                                                                       \
                count++;                                                                                        \
            }                                                                                                   \
            return count;                                                                                       \
        }                                                                                                       \
        T *block = s->best;                                                                                     \
        for (int64_t start = 0; start < anchors; start += SCAN_BLOCK) {                                         \
            const int64_t size = anchors - start < SCAN_BLOCK ? anchors - start : SCAN_BLOCK;                   \
            const T *best = scores + offsets[0] + start;                                                        \
            if (rows > 1) {                                                                                     \
                const T *second = scores + offsets[1] + start;                                                  \
                for (int64_t i = 0; i < size; i++) block[i] = second[i] > best[i] ? second[i] : best[i];        \
                int64_t r = 2;                                                                                  \
                for (; r + 8 <= rows; r += 8) {                                                                 \
                    const T *q[8];                                                                              \
                    for (int k = 0; k < 8; k++) q[k] = scores + offsets[r + k] + start;                         \
                    for (int64_t i = 0; i < size; i++) {                                                        \
                        T m = block[i];                                                                         \
                        m = q[0][i] > m ? q[0][i] : m;                                                          \
                        m = q[1][i] > m ? q[1][i] : m;                                                          \
                        m = q[2][i] > m ? q[2][i] : m;                                                          \
                        m = q[3][i] > m ? q[3][i] : m;                                                          \
                        m = q[4][i] > m ? q[4][i] : m;                                                          \
                        m = q[5][i] > m ? q[5][i] : m;                                                          \
                        m = q[6][i] > m ? q[6][i] : m;                                                          \
                        m = q[7][i] > m ? q[7][i] : m;                                                          \
                        block[i] = m;                                                                           \
                    }                                                                                           \
                }                                                                                               \
                for (; r < rows; r++) {                                                                         \
                    const T *row = scores + offsets[r] + start;                                                 \
                    for (int64_t i = 0; i < size; i++) block[i] = row[i] > block[i] ? row[i] : block[i];        \
                }                                                                                               \
                best = block;                                                                                   \
            }                                                                                                   \
            for (int64_t from = 0; from < size; from += 64) {                                                   \
                const int64_t to = from + 64 < size ? from + 64 : size;                                         \
                int hit = 0;                                                                                    \
                for (int64_t i = from; i < to; i++) hit |= best[i] >= threshold;                                \
                if (!hit) continue;                                                                             \
                for (int64_t i = from; i < to; i++) {                                                           \
                    if (!(best[i] >= threshold)) continue;                                                      \
                    const int64_t a = start + i;                                                                \
                    int32_t best_row = -1;                                                                      \
                    int nan = 0;                                                                                \
                    for (int64_t r = 0; r < rows; r++) {                                                        \
                        const T v = scores[offsets[r] + a];                                                     \
                        nan |= IS_NAN(v);                                                                       \
                        if (best_row < 0 && v == best[i]) {                                                     \
                            best_row = (int32_t)r;                                                              \
                            if (!HAS_NAN) break; /* else look on for a NaN */                                   \
                        }                                                                                       \
                    }                                                                                           \
                    if (nan) continue;                                                                          \
                    s->index[count] = (int32_t)a;                                                               \
                    s->value[count] = (float)best[i];                                                           \
                    s->row[count] = best_row;                                                                   \
                    count++;                                                                                    \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
        return count;                                                                                           \
    }

#define NOT_NAN(v) 0
#define IS_NAN_F32(v) ((v) != (v))
DEFINE_SCAN(scan_f32, float, IS_NAN_F32, 1)
DEFINE_SCAN(scan_i8, int8_t, NOT_NAN, 0)
DEFINE_SCAN(scan_u8, uint8_t, NOT_NAN, 0)

/* YOLOv5: anchors whose objectness reaches its raw threshold, scored objectness x class in float32. */
static int64_t scan_objectness(const edgenode_decode_plan *p, const void *scores, const void *boxes,
                               const scratch_t *s) {
    const float objectness_threshold = (float)p->objectness_threshold, threshold = (float)p->real_threshold;
    int64_t count = 0;
    for (int64_t a = 0; a < p->anchors; a++) {
        const int64_t at = p->objectness_offset + a * p->box_anchor_stride;
        if (!(raw_value(p->box.type, boxes, at) >= objectness_threshold)) continue;
        const float objectness = real_value(&p->box, boxes, at);
        float best = 0.0f;
        int32_t best_row = 0;
        for (int64_t r = 0; r < p->rows; r++) {
            const float v = real_value(&p->score, scores, p->row_offsets[r] + a * p->anchor_stride) * objectness;
            if (r == 0 || v > best || v != v) { /* the first maximum; a NaN best stays (no candidate) */
                best_row = (int32_t)r;
                best = v;
            }
        }
        if (best >= threshold) {
            s->index[count] = (int32_t)a;
            s->value[count] = best;
            s->row[count] = best_row;
            count++;
        }
    }
    return count;
}

/* Order key of a score: larger score, larger key; -0 ties with +0; NaN below every number (numpy's sort). */
static inline uint32_t score_key(float v) {
    uint32_t bits;
    if (v != v) return 0;
    if (v == 0.0f) v = 0.0f;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

/* Keep the `cap` first of the candidates in NMS order (descending key, ties in input order), still in input
 * order: a radix selection of the cap-th key, then the keys above it and the first of those equal to it. */
static int64_t keep_first(const scratch_t *s, int64_t count, int64_t cap) {
    if (count <= cap) return count;
    uint32_t prefix = 0, mask = 0;
    int64_t wanted = cap; /* still to take among the keys matching prefix under mask */
    for (int shift = 32 - RADIX_BITS; ; shift -= RADIX_BITS) {
        const int width = shift < 0 ? RADIX_BITS + shift : RADIX_BITS;
        const int at = shift < 0 ? 0 : shift;
        const uint32_t digits = (1u << width) - 1u;
        memset(s->histogram, 0, sizeof(uint32_t) * RADIX_BUCKETS);
        for (int64_t i = 0; i < count; i++) {
            const uint32_t key = score_key(s->value[i]);
            if ((key & mask) == prefix) s->histogram[(key >> at) & digits]++;
        }
        for (int64_t digit = digits; digit >= 0; digit--) {
            if ((int64_t)s->histogram[digit] >= wanted) {
                prefix |= (uint32_t)digit << at;
                break;
            }
            wanted -= s->histogram[digit];
        }
        mask |= digits << at;
        if (at == 0) break;
    }
    int64_t kept = 0;
    for (int64_t i = 0; i < count; i++) {
        const uint32_t key = score_key(s->value[i]);
        if (key > prefix || (key == prefix && wanted-- > 0)) {
            s->index[kept] = s->index[i];
            s->value[kept] = s->value[i];
            s->row[kept] = s->row[i];
            kept++;
        }
    }
    return kept;
}

/* Ascending sort of 64-bit keys (a stable bottom-up merge sort; the keys are distinct anyway). */
static void sort_keys(uint64_t *keys, uint64_t *spare, int64_t count) {
    for (int64_t i = 1; i < count && count <= 16; i++) { /* small: insertion */
        const uint64_t key = keys[i];
        int64_t j = i;
        for (; j > 0 && keys[j - 1] > key; j--) keys[j] = keys[j - 1];
        keys[j] = key;
    }
    if (count <= 16) return;
    uint64_t *from = keys, *to = spare;
    for (int64_t width = 1; width < count; width *= 2) {
        for (int64_t left = 0; left < count; left += 2 * width) {
            const int64_t middle = left + width < count ? left + width : count;
            const int64_t right = left + 2 * width < count ? left + 2 * width : count;
            int64_t i = left, j = middle, k = left;
            while (i < middle && j < right) to[k++] = from[j] < from[i] ? from[j++] : from[i++];
            while (i < middle) to[k++] = from[i++];
            while (j < right) to[k++] = from[j++];
        }
        uint64_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != keys) memcpy(keys, from, sizeof(uint64_t) * (size_t)count);
}

/* The candidates in NMS order into the sorted_* arrays (position i: i-th best). */
static void nms_order(const scratch_t *s, int64_t count) {
    for (int64_t i = 0; i < count; i++) s->keys[i] = ((uint64_t)~score_key(s->value[i]) << 32) | (uint64_t)i;
    sort_keys(s->keys, s->merge, count);
    for (int64_t k = 0; k < count; k++) {
        const int64_t i = (int64_t)(s->keys[k] & 0xffffffffu);
        s->sorted_anchor[k] = s->index[i];
        s->sorted_value[k] = s->value[i];
        s->sorted_row[k] = s->row[i];
    }
}

/* ---- NMS ---- */

/* Positions (into the NMS-ordered candidates, corners in s->corners) greedy NMS keeps, at most max_boxes.
 * `labels` (or NULL: class-agnostic) in s->labels. The pairs of one kept box with every later one are one
 * branch-free loop over the rows x1, y1, -x2, -y2 (vectorised); numpy's maximum is `a > b ? a : b` there,
 * as the kept box has no NaN coordinate (a NaN coordinate makes its area NaN: it suppresses nothing). */
static int64_t greedy(const scratch_t *s, int64_t count, int aware, double iou_bound, int64_t max_boxes) {
    if (max_boxes <= 0) return 0;
    if (iou_bound >= 1.0 || count <= 1) { /* nothing to suppress */
        const int64_t kept = count < max_boxes ? count : max_boxes;
        for (int64_t i = 0; i < kept; i++) s->kept[i] = (int32_t)i;
        return kept;
    }
    float *restrict x1 = s->x1, *restrict y1 = s->y1, *restrict nx2 = s->negative_x2, *restrict ny2 = s->negative_y2;
    float *restrict areas = s->areas;
    int32_t *restrict dead = s->dead, *restrict labels = s->labels;
    for (int64_t i = 0; i < count; i++) {
        x1[i] = s->corners[4 * i];
        y1[i] = s->corners[4 * i + 1];
        nx2[i] = -s->corners[4 * i + 2];
        ny2[i] = -s->corners[4 * i + 3];
        areas[i] = (x1[i] + nx2[i]) * (y1[i] + ny2[i]); /* (-w) x (-h) */
        dead[i] = 0;
        if (!aware) labels[i] = 0;
    }
    const float iou = (float)iou_bound;
    int64_t kept = 0;
    for (int64_t i = 0; i < count; i++) {
        if (dead[i]) continue;
        s->kept[kept++] = (int32_t)i;
        if (kept == max_boxes) break;
        const float ax1 = x1[i], ay1 = y1[i], anx2 = nx2[i], any2 = ny2[i], area = areas[i];
        const int32_t label = labels[i];
        if (area != area) continue;
        for (int64_t j = i + 1; j < count; j++) {
            float width = (ax1 > x1[j] ? ax1 : x1[j]) + (anx2 > nx2[j] ? anx2 : nx2[j]); /* minus the overlap */
            float height = (ay1 > y1[j] ? ay1 : y1[j]) + (any2 > ny2[j] ? any2 : ny2[j]);
            width = width > 0.0f ? 0.0f : width;
            height = height > 0.0f ? 0.0f : height;
            const float inter = width * height;
            float union_ = area + areas[j];
            union_ = union_ - inter;
            union_ = union_ * iou;
            dead[j] |= (inter > union_) & (labels[j] == label);
        }
    }
    return kept;
}

/* ---- the plan's decode ---- */

static int values_ok(const edgenode_values *v) {
    return v->type == TYPE_F32 || ((v->type == TYPE_I8 || v->type == TYPE_U8) && v->table);
}

static int plan_ok(const edgenode_decode_plan *p) {
    return p && p->rows > 0 && p->anchors > 0 && p->anchors <= INT32_MAX && p->cap > 0 && p->max_boxes > 0
           && p->row_offsets && p->class_ids && p->scratch && p->out_boxes && p->out_scores && p->out_classes
           && p->out_anchors && p->candidates
           && values_ok(&p->score) && values_ok(&p->box)
           && p->scratch_bytes >= edgenode_decode_scratch_bytes(p->anchors, p->cap);
}

/* Scan, cap and order the candidates (in scratch); their count. */
static int64_t candidates(const edgenode_decode_plan *p, const void *scores, const void *boxes, scratch_t *s) {
    carve(s, p->scratch, p->anchors, p->cap);
    int64_t count;
    if (p->objectness_offset >= 0) {
        count = scan_objectness(p, scores, boxes, s);
    } else if (p->score.type == TYPE_I8) {
        count = scan_i8(p, scores, s);
    } else if (p->score.type == TYPE_U8) {
        count = scan_u8(p, scores, s);
    } else {
        count = scan_f32(p, scores, s);
    }
    count = keep_first(s, count, p->cap);
    nms_order(s, count);
    return count;
}

/* NMS over the ordered candidates' corners (in scratch), then the kept rows into the outputs. */
static int64_t finish(const edgenode_decode_plan *p, scratch_t *s, int64_t count) {
    if (p->class_aware) {
        for (int64_t k = 0; k < count; k++) s->labels[k] = (int32_t)p->class_ids[s->sorted_row[k]];
    }
    const int64_t kept = greedy(s, count, (int)p->class_aware, p->iou, p->max_boxes);
    int scale = p->normalise == NORMALISE_ALWAYS;
    for (int64_t k = 0; k < kept; k++) {
        const int64_t i = s->kept[k];
        for (int c = 0; c < 4; c++) {
            const float v = s->corners[4 * i + c];
            p->out_boxes[4 * k + c] = v;
            if (p->normalise == NORMALISE_PIXELS && !(v <= PIXEL_COORDINATE)) scale = 1;
        }
        const float raw = s->sorted_value[i];
        float score = raw;
        if (p->objectness_offset < 0) {
            if (p->score.type == TYPE_I8) score = p->score.table[(uint8_t)(int8_t)raw];
            else if (p->score.type == TYPE_U8) score = p->score.table[(uint8_t)raw];
            else if (p->score.scale != 0.0) score = (raw - (float)p->score.zero) * (float)p->score.scale;
        }
        p->out_scores[k] = score;
        p->out_classes[k] = (int32_t)p->class_ids[s->sorted_row[i]];
        p->out_anchors[k] = s->sorted_anchor[i];
    }
    if (scale) {
        const float width = (float)p->width, height = (float)p->height;
        for (int64_t k = 0; k < kept; k++) {
            p->out_boxes[4 * k] = p->out_boxes[4 * k] / width;
            p->out_boxes[4 * k + 1] = p->out_boxes[4 * k + 1] / height;
            p->out_boxes[4 * k + 2] = p->out_boxes[4 * k + 2] / width;
            p->out_boxes[4 * k + 3] = p->out_boxes[4 * k + 3] / height;
        }
    }
    return kept;
}

/* One frame: `scores` and `boxes` are the bases of the plan's offsets (the same output for combined heads).
 * Returns the number of kept boxes in the plan's outputs (best first), or a negative error. */
EDGENODE_EXPORT int64_t edgenode_decode(const edgenode_decode_plan *p, const void *scores, const void *boxes) {
    if (!plan_ok(p) || p->box_format == BOXES_GIVEN || !boxes) return ERROR_PLAN;
    scratch_t s;
    const int64_t count = candidates(p, scores, boxes, &s);
    for (int64_t k = 0; k < count; k++) {
        const int64_t at = (int64_t)s.sorted_anchor[k] * p->box_anchor_stride;
        float v[4];
        for (int c = 0; c < 4; c++) v[c] = real_value(&p->box, boxes, p->box_offsets[c] + at);
        float *corner = s.corners + 4 * k;
        if (p->box_format == BOXES_XYXY) {
            memcpy(corner, v, sizeof v);
        } else { /* rows of the matrix (1 0 -.5 0), (0 1 0 -.5), (1 0 .5 0), (0 1 0 .5), term by term */
            corner[0] = v[0] * 1.0f + v[1] * 0.0f + v[2] * -0.5f + v[3] * 0.0f;
            corner[1] = v[0] * 0.0f + v[1] * 1.0f + v[2] * 0.0f + v[3] * -0.5f;
            corner[2] = v[0] * 1.0f + v[1] * 0.0f + v[2] * 0.5f + v[3] * 0.0f;
            corner[3] = v[0] * 0.0f + v[1] * 1.0f + v[2] * 0.0f + v[3] * 0.5f;
        }
    }
    return finish(p, &s, count);
}

/* Boxes the caller computes (raw DFL heads): first the candidates' anchors in NMS order into
 * p->candidates (their count is returned), then edgenode_decode_given with their corners. */
EDGENODE_EXPORT int64_t edgenode_decode_candidates(const edgenode_decode_plan *p, const void *scores) {
    if (!plan_ok(p) || p->box_format != BOXES_GIVEN || p->objectness_offset >= 0) return ERROR_PLAN;
    scratch_t s;
    const int64_t count = candidates(p, scores, NULL, &s);
    for (int64_t k = 0; k < count; k++) p->candidates[k] = s.sorted_anchor[k];
    return count;
}

/* The second step: `corners` (count x 4 x1, y1, x2, y2, in the order of p->candidates), right after
 * edgenode_decode_candidates on this plan (its candidates are still in the scratch). */
EDGENODE_EXPORT int64_t edgenode_decode_given(const edgenode_decode_plan *p, const float *corners, int64_t count) {
    if (!plan_ok(p) || p->box_format != BOXES_GIVEN || (!corners && count)) return ERROR_PLAN;
    if (count < 0 || count > p->cap) return ERROR_COUNT;
    scratch_t s;
    carve(&s, p->scratch, p->anchors, p->cap);
    if (count) memcpy(s.corners, corners, sizeof(float) * 4 * (size_t)count); /* (NULL is no argument to memcpy) */
    return finish(p, &s, count);
}

/* ---- generic NMS (decoders that compute their boxes in numpy) ---- */

/* Greedy NMS of `count` boxes (x1, y1, x2, y2 float32) by descending float32 score (ties in input order, NaN
 * last), over the first `cap` of that order; `labels` (or NULL) makes it class-aware. Writes the kept
 * boxes' indices, best first, into `kept` (capacity max_boxes) and returns their number. */
EDGENODE_EXPORT int64_t edgenode_nms(const float *boxes, const float *scores, const int32_t *labels, int64_t count,
                                     double iou, int64_t max_boxes, int64_t cap, int64_t *kept, void *scratch,
                                     int64_t scratch_bytes) {
    if (count < 0 || count > INT32_MAX || cap < 0 || max_boxes < 0 || !kept || !scratch) return ERROR_PLAN;
    if (scratch_bytes < edgenode_decode_scratch_bytes(count, cap)) return ERROR_SCRATCH;
    scratch_t s;
    carve(&s, scratch, count, cap);
    for (int64_t i = 0; i < count; i++) {
        s.index[i] = (int32_t)i;
        s.value[i] = scores[i];
        s.row[i] = 0;
    }
    const int64_t chosen = keep_first(&s, count, cap);
    nms_order(&s, chosen);
    for (int64_t k = 0; k < chosen; k++) {
        memcpy(s.corners + 4 * k, boxes + 4 * (int64_t)s.sorted_anchor[k], 4 * sizeof(float));
        if (labels) s.labels[k] = labels[s.sorted_anchor[k]];
    }
    const int64_t found = greedy(&s, chosen, labels != NULL, iou, max_boxes);
    for (int64_t k = 0; k < found; k++) kept[k] = s.sorted_anchor[s.kept[k]];
    return found;
}
