/*
 * crossclear risk kernel: the v2 ("fhs") portfolio requirement, expected shortfall of
 * filtered historical scenarios plus weighted stress scenarios, for every account of a book.
 *
 * The methodology is the v2 section of docs/margin-methodology.md; it is implemented a
 * second time, in numpy, in node/crossclear/risk/fhs.py, and the test suite holds the two to
 * each other.
 *
 * Two calls: risk_prepare filters the history and revalues one unit of every instrument in
 * every scenario into a table (cheap: instruments x scenarios valuations); risk_compute then
 * makes one pass over a range of accounts, accumulating each account's scenario P&L and
 * reading its tail mean in the same pass.
 *
 * Memory contract: every array is owned by the caller (numpy, passed without copies). The
 * kernel allocates nothing and keeps no global state. risk_compute only reads the table and
 * writes the output rows of its own accounts, so calls on disjoint account ranges may run at
 * the same time on different threads, each with its own scratch.
 */
#ifndef CROSSCLEAR_RISK_KERNEL_H
#define CROSSCLEAR_RISK_KERNEL_H

#include <stdint.h>

#define RISK_KIND_PERP 0
#define RISK_KIND_CALL 1
#define RISK_KIND_PUT 2

/* Return codes. Errors name the first offending index through *error_index. */
#define RISK_OK 0
#define RISK_ERROR_BAD_PARAMS (-1)
#define RISK_ERROR_INSTRUMENT_UNDERLYING (-2)
#define RISK_ERROR_INSTRUMENT_KIND (-3)
#define RISK_ERROR_POSITION_INSTRUMENT (-4)
#define RISK_ERROR_OFFSETS (-5)
#define RISK_ERROR_ACCOUNT_RANGE (-6)
#define RISK_ERROR_HISTORY (-7)

typedef struct {
    double decay;                 /* lambda of the EWMA variance filter, 0 < lambda < 1 */
    int64_t lookback;             /* L: historical scenarios; the history has L + 1 rows */
    double mpor_days;             /* h */
    int32_t apc_vol_floor;        /* 1: floor today's vol at the lookback's plain vol */
    int64_t tail_count;           /* k = ceil((1 - alpha) L), computed exactly by the caller */
    int64_t stress_count;         /* rows of stress_returns */
    const double *stress_returns; /* stress_count x underlyings, h-day log returns */
    const double *stress_weight;  /* stress_count */
    double im_multiplier;
} risk_params;

typedef struct {
    int64_t underlying_count;
    const double *spot;        /* S_u */
    const double *vol;         /* implied vol sigma_u, unchanged in every scenario */
    const double *closes;      /* (L + 1) x underlyings, row-major, oldest first, all > 0 */
    const double *sigma_forecast; /* NULL: step 4 uses the EWMA filter's sigma_(L+1); else one
                                     daily vol per underlying from a forecaster (params.fhs_forecaster),
                                     still floored when apc_vol_floor is set */
} risk_market;

typedef struct {
    int64_t count;
    const int32_t *underlying;
    const int32_t *kind;         /* RISK_KIND_* */
    const double *strike;
    const double *expiry_years;  /* time to expiry T now */
} risk_instruments;

/* Positions of all accounts in CSR form. */
typedef struct {
    int64_t account_count;
    const int64_t *position_offsets; /* account_count + 1 entries */
    const int32_t *position_instrument;
    const double *position_qty;
    const double *position_entry;
} risk_book;

typedef struct {
    double *es;       /* accounts */
    double *stress;   /* accounts */
    double *mm;       /* accounts */
    double *im;       /* accounts */
    double *required; /* accounts */
    double *upnl;     /* accounts */
} risk_outputs;

/* Doubles in the table risk_prepare fills and risk_compute reads. */
int64_t risk_table_doubles(const risk_params *params, const risk_market *market,
                           const risk_instruments *instruments);

/* Doubles of scratch one risk_compute call needs (one per concurrent call). */
int64_t risk_scratch_doubles(const risk_params *params);

/* Filter the history and revalue every instrument in every scenario into `table`. */
int risk_prepare(const risk_params *params, const risk_market *market,
                 const risk_instruments *instruments, double *table, int64_t *error_index);

/*
 * v2 figures for accounts [account_begin, account_end) of the book; other output rows are
 * left untouched. Every account of the range is checked before any output is written.
 */
int risk_compute(const risk_params *params, const risk_market *market,
                 const risk_instruments *instruments, const double *table,
                 const risk_book *book, int64_t account_begin, int64_t account_end,
                 double *scratch, risk_outputs *outputs, int64_t *error_index);

#endif
