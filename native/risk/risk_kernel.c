/*
 * crossclear risk kernel. See risk_kernel.h for the contract and the v2 section of
 * docs/margin-methodology.md for the methodology this implements.
 *
 * Layout of the table (doubles), S = L + stress scenarios:
 *   mark         instruments
 *   unit P&L     instruments x S (stress columns already times their weight)
 *   moves        underlyings x S, the log return of each underlying in each scenario
 * Layout of the scratch: the account's P&L per scenario (S), then tail_mean's work space.
 */
#include "risk_kernel.h"

#include <math.h>
#include <stddef.h>

#define DAYS_PER_YEAR 365.0

static int64_t scenario_count(const risk_params *params) {
    return params->lookback + params->stress_count;
}

int64_t risk_table_doubles(const risk_params *params, const risk_market *market,
                           const risk_instruments *instruments) {
    const int64_t scenarios = scenario_count(params);
    return instruments->count * (1 + scenarios) + market->underlying_count * scenarios;
}

int64_t risk_scratch_doubles(const risk_params *params) {
    /* P&L per scenario, then tail_mean's block losses and its top k. */
    return scenario_count(params) + params->lookback / 8 + 1 + params->tail_count;
}

static int params_valid(const risk_params *params) {
    return params->lookback >= 1 && params->tail_count >= 1 &&
           params->tail_count <= params->lookback && params->stress_count >= 0 &&
           params->decay > 0.0 && params->decay < 1.0 && params->mpor_days >= 0.0 &&
           (params->stress_count == 0 || (params->stress_returns != NULL && params->stress_weight != NULL));
}

static double normal_cdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

/* Black-76 with zero rates and forward = spot, as in the margin kernel; intrinsic value when
 * there is no time value left to price (expired, zero vol) or the price reached zero. */
static double instrument_value(int32_t kind, double price, double vol, double strike,
                               double expiry_years) {
    if (kind == RISK_KIND_PERP) return price;
    if (expiry_years <= 0.0 || vol <= 0.0 || price <= 0.0) {
        if (kind == RISK_KIND_CALL) return price > strike ? price - strike : 0.0;
        return strike > price ? strike - price : 0.0;
    }
    double total_vol = vol * sqrt(expiry_years);
    double d1 = (log(price / strike) + 0.5 * total_vol * total_vol) / total_vol;
    double d2 = d1 - total_vol;
    if (kind == RISK_KIND_CALL) return price * normal_cdf(d1) - strike * normal_cdf(d2);
    return strike * normal_cdf(-d2) - price * normal_cdf(-d1);
}

/* Steps 1-5 for one underlying: its log move in each historical scenario. */
static int filter_history(const risk_params *params, const risk_market *market, int64_t u,
                          double *moves) {
    const int64_t lookback = params->lookback;
    const int64_t columns = market->underlying_count;
    const double *closes = market->closes;
    double plain_variance = 0.0;
    for (int64_t t = 1; t <= lookback; t++) {
        double before = closes[(t - 1) * columns + u], after = closes[t * columns + u];
        if (!(before > 0.0) || !(after > 0.0) || !isfinite(before) || !isfinite(after)) return 0;
        double r = log(after) - log(before);
        moves[t - 1] = r;
        plain_variance += r * r;
    }
    plain_variance /= (double)lookback;
    /* moves holds r_t; replace each by z_t while the filter runs over it. */
    double variance = plain_variance;
    for (int64_t t = 0; t < lookback; t++) {
        double r = moves[t];
        double sigma = sqrt(variance);
        moves[t] = sigma > 0.0 ? r / sigma : 0.0;
        variance = params->decay * variance + (1.0 - params->decay) * r * r;
    }
    double sigma_star = market->sigma_forecast != NULL ? market->sigma_forecast[u] : sqrt(variance);
    if (!(sigma_star >= 0.0) || !isfinite(sigma_star)) return 0;
    if (params->apc_vol_floor) sigma_star = fmax(sigma_star, sqrt(plain_variance));
    const double horizon = sqrt(params->mpor_days);
    for (int64_t t = 0; t < lookback; t++) moves[t] = horizon * moves[t] * sigma_star;
    return 1;
}

int risk_prepare(const risk_params *params, const risk_market *market,
                 const risk_instruments *instruments, double *table, int64_t *error_index) {
    if (!params_valid(params)) {
        *error_index = 0;
        return RISK_ERROR_BAD_PARAMS;
    }
    const int64_t scenarios = scenario_count(params);
    const int64_t count = instruments->count;
    const int64_t columns = market->underlying_count;
    double *mark = table;
    double *unit_pnl = table + count;
    double *moves = unit_pnl + count * scenarios;

    for (int64_t u = 0; u < columns; u++) {
        double *row = moves + u * scenarios;
        if (!filter_history(params, market, u, row)) {
            *error_index = u;
            return RISK_ERROR_HISTORY;
        }
        for (int64_t j = 0; j < params->stress_count; j++)
            row[params->lookback + j] = params->stress_returns[j * columns + u];
    }

    for (int64_t i = 0; i < count; i++) {
        const int32_t underlying = instruments->underlying[i];
        const int32_t kind = instruments->kind[i];
        if (underlying < 0 || underlying >= columns) {
            *error_index = i;
            return RISK_ERROR_INSTRUMENT_UNDERLYING;
        }
        if (kind < RISK_KIND_PERP || kind > RISK_KIND_PUT) {
            *error_index = i;
            return RISK_ERROR_INSTRUMENT_KIND;
        }
        const double spot = market->spot[underlying];
        const double vol = market->vol[underlying];
        const double strike = instruments->strike[i];
        const double expiry = instruments->expiry_years[i];
        const double remaining = fmax(0.0, expiry - params->mpor_days / DAYS_PER_YEAR);
        const double now = instrument_value(kind, spot, vol, strike, expiry);
        const double *move = moves + (int64_t)underlying * scenarios;
        double *row = unit_pnl + i * scenarios;
        mark[i] = now;
        for (int64_t s = 0; s < scenarios; s++) {
            double weight = s < params->lookback ? 1.0 : params->stress_weight[s - params->lookback];
            row[s] = weight * (instrument_value(kind, spot * exp(move[s]), vol, strike, remaining) - now);
        }
    }
    return RISK_OK;
}

/* The account's P&L per scenario. Positions are taken eight (or four) at a time so the
 * running sum stays in registers and pnl is written once per group; the order of the
 * additions is fixed, so the result is too. Missing members of a short group read a real row
 * with weight 0 (adding +0 is exact). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void accumulate(const double *unit_pnl, int64_t scenarios, const risk_book *book,
                       int64_t begin, int64_t end, double *restrict pnl) {
    if (begin == end) {
        for (int64_t s = 0; s < scenarios; s++) pnl[s] = 0.0;
        return;
    }
    int first = 1;
    for (int64_t p = begin; p < end;) {
        const int64_t left = end - p;
        const int64_t width = left >= 8 ? 8 : 4;
        const int64_t group = left < width ? left : width;
        const double *r[8];
        double q[8];
        for (int64_t g = 0; g < 8; g++) {
            int64_t position = g < group ? p + g : begin;
            r[g] = unit_pnl + (int64_t)book->position_instrument[position] * scenarios;
            q[g] = g < group ? book->position_qty[position] : 0.0;
        }
        const double *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2], *restrict r3 = r[3];
        const double q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        if (width == 8) {
            const double *restrict r4 = r[4], *restrict r5 = r[5], *restrict r6 = r[6], *restrict r7 = r[7];
            const double q4 = q[4], q5 = q[5], q6 = q[6], q7 = q[7];
            const double keep = first ? 0.0 : 1.0;
            for (int64_t s = 0; s < scenarios; s++) {
                double sum = ((q0 * r0[s] + q1 * r1[s]) + (q2 * r2[s] + q3 * r3[s])) +
                             ((q4 * r4[s] + q5 * r5[s]) + (q6 * r6[s] + q7 * r7[s]));
                pnl[s] = first ? sum : pnl[s] + sum;
            }
            (void)keep;
        } else if (first) {
            for (int64_t s = 0; s < scenarios; s++)
                pnl[s] = (q0 * r0[s] + q1 * r1[s]) + (q2 * r2[s] + q3 * r3[s]);
        } else {
            for (int64_t s = 0; s < scenarios; s++)
                pnl[s] += (q0 * r0[s] + q1 * r1[s]) + (q2 * r2[s] + q3 * r3[s]);
        }
        first = 0;
        p += group;
    }
}

/* Mean of the k largest of -pnl[0..n), exactly, without visiting most scenarios twice.
 *
 * 1. The smallest P&L (largest loss) of each block of 8 scenarios: a branch-free pass.
 * 2. tau = the k-th largest of those block losses. k different blocks each hold a loss of at
 *    least tau, so the k largest losses are all >= tau, and they all sit in blocks whose
 *    largest loss is >= tau (usually few more than k blocks).
 * 3. Only those blocks are walked, keeping the k largest losses in a sorted array.
 * `work` holds at least n / 8 + 1 + k doubles. */
#define TAIL_BLOCK 8

static void keep_largest(double *top, int64_t k, double value) {
    /* top is sorted largest first; value > top[k - 1] replaces the smallest, then sinks. */
    int64_t at = k - 1;
    while (at > 0 && top[at - 1] < value) {
        top[at] = top[at - 1];
        at--;
    }
    top[at] = value;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static double tail_mean(const double *restrict pnl, int64_t n, int64_t k, double *restrict work) {
    const int64_t blocks = (n + TAIL_BLOCK - 1) / TAIL_BLOCK;
    double *restrict block_loss = work;
    double *restrict top = work + blocks;
    const int64_t full = n / TAIL_BLOCK;
    for (int64_t b = 0; b < full; b++) {
        const double *x = pnl + b * TAIL_BLOCK;
        double a0 = x[0] < x[1] ? x[0] : x[1], a1 = x[2] < x[3] ? x[2] : x[3];
        double a2 = x[4] < x[5] ? x[4] : x[5], a3 = x[6] < x[7] ? x[6] : x[7];
        a0 = a0 < a1 ? a0 : a1;
        a2 = a2 < a3 ? a2 : a3;
        block_loss[b] = -(a0 < a2 ? a0 : a2);
    }
    if (full < blocks) {
        double least = pnl[full * TAIL_BLOCK];
        for (int64_t s = full * TAIL_BLOCK + 1; s < n; s++) least = pnl[s] < least ? pnl[s] : least;
        block_loss[full] = -least;
    }

    double tau;
    if (blocks <= k) {
        tau = -INFINITY; /* fewer blocks than k: every scenario is a candidate */
    } else {
        for (int64_t t = 0; t < k; t++) top[t] = -INFINITY;
        for (int64_t b = 0; b < blocks; b++)
            if (block_loss[b] > top[k - 1]) keep_largest(top, k, block_loss[b]);
        tau = top[k - 1];
    }

    for (int64_t t = 0; t < k; t++) top[t] = -INFINITY;
    int64_t filled = 0;
    for (int64_t b = 0; b < blocks; b++) {
        if (block_loss[b] < tau) continue;
        const int64_t stop = (b + 1) * TAIL_BLOCK < n ? (b + 1) * TAIL_BLOCK : n;
        for (int64_t s = b * TAIL_BLOCK; s < stop; s++) {
            const double loss = -pnl[s];
            if (filled < k) {
                keep_largest(top, filled + 1, loss);
                filled++;
            } else if (loss > top[k - 1]) {
                keep_largest(top, k, loss);
            }
        }
    }
    double sum = 0.0;
    for (int64_t t = 0; t < k; t++) sum += top[t];
    return sum / (double)k;
}

int risk_compute(const risk_params *params, const risk_market *market,
                 const risk_instruments *instruments, const double *table,
                 const risk_book *book, int64_t account_begin, int64_t account_end,
                 double *scratch, risk_outputs *outputs, int64_t *error_index) {
    (void)market;
    if (!params_valid(params)) {
        *error_index = 0;
        return RISK_ERROR_BAD_PARAMS;
    }
    if (account_begin < 0 || account_end < account_begin || account_end > book->account_count) {
        *error_index = account_begin;
        return RISK_ERROR_ACCOUNT_RANGE;
    }
    for (int64_t a = account_begin; a < account_end; a++) {
        int64_t begin = book->position_offsets[a], end = book->position_offsets[a + 1];
        if (begin < 0 || end < begin) {
            *error_index = a;
            return RISK_ERROR_OFFSETS;
        }
        for (int64_t p = begin; p < end; p++) {
            if (book->position_instrument[p] < 0 || book->position_instrument[p] >= instruments->count) {
                *error_index = p;
                return RISK_ERROR_POSITION_INSTRUMENT;
            }
        }
    }

    const int64_t scenarios = scenario_count(params);
    const int64_t lookback = params->lookback;
    const double *mark = table;
    const double *unit_pnl = table + instruments->count;
    double *pnl = scratch;
    double *work = scratch + scenarios;
    for (int64_t a = account_begin; a < account_end; a++) {
        const int64_t begin = book->position_offsets[a], end = book->position_offsets[a + 1];
        double upnl = 0.0;
        for (int64_t p = begin; p < end; p++) {
            int32_t instrument = book->position_instrument[p];
            upnl += book->position_qty[p] * (mark[instrument] - book->position_entry[p]);
        }
        accumulate(unit_pnl, scenarios, book, begin, end, pnl);
        const double es = tail_mean(pnl, lookback, params->tail_count, work);
        double stress = 0.0;
        for (int64_t j = 0; j < params->stress_count; j++) {
            double loss = -pnl[lookback + j];
            stress = j == 0 ? loss : fmax(stress, loss);
        }
        /* + 0.0 turns a -0.0 (the loss of a book that cannot lose) into 0.0. */
        const double mm = fmax(0.0, fmax(es, stress)) + 0.0;
        const double im = params->im_multiplier * mm;
        outputs->es[a] = es + 0.0;
        outputs->stress[a] = stress + 0.0;
        outputs->mm[a] = mm;
        outputs->im[a] = im;
        outputs->required[a] = fmax(0.0, im - upnl);
        outputs->upnl[a] = upnl;
    }
    return RISK_OK;
}
