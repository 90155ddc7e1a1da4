/*
 * crossclear margin kernel: isolated, per-chain cross, global cross and portfolio
 * (scenario-based) margin for every account of a book, in one pass.
 *
 * The methodology is documented in docs/margin-methodology.md and implemented a second
 * time, in numpy, in node/crossclear/margin/methodology.py; the two are held to each other
 * by the test suite.
 *
 * Memory contract: every array is owned by the caller (numpy, passed without copies).
 * The kernel allocates nothing and keeps no global state; scratch space is the caller's
 * `workspace`, sized by margin_workspace_doubles(). All calls are re-entrant.
 */
#ifndef CROSSCLEAR_MARGIN_KERNEL_H
#define CROSSCLEAR_MARGIN_KERNEL_H

#include <stdint.h>

#define MARGIN_KIND_PERP 0
#define MARGIN_KIND_CALL 1
#define MARGIN_KIND_PUT 2

/* Mode columns of the (accounts x 4) output matrices. */
#define MARGIN_MODE_ISOLATED 0
#define MARGIN_MODE_CROSS_SILOED 1
#define MARGIN_MODE_CROSS 2
#define MARGIN_MODE_PORTFOLIO 3
#define MARGIN_MODE_COUNT 4

/* Return codes. Errors name the first offending index through *error_index. */
#define MARGIN_OK 0
#define MARGIN_ERROR_BAD_PARAMS (-1)
#define MARGIN_ERROR_INSTRUMENT_UNDERLYING (-2)
#define MARGIN_ERROR_INSTRUMENT_KIND (-3)
#define MARGIN_ERROR_POSITION_INSTRUMENT (-4)
#define MARGIN_ERROR_POSITION_CHAIN (-5)
#define MARGIN_ERROR_COLLATERAL_ASSET (-6)
#define MARGIN_ERROR_OFFSETS (-7)
#define MARGIN_ERROR_ACCOUNT_SUBSET (-8)

typedef struct {
    int32_t price_steps;          /* evenly spaced price moves from -R to +R, >= 2 */
    int32_t vol_shock_count;      /* length of vol_shocks */
    const double *vol_shocks;     /* relative vol shocks, each > -1 */
    double extreme_move;          /* extreme scenarios move the price by +-extreme_move * R */
    double extreme_weight;        /* weight of the two extreme scenarios */
    double pm_floor_rate;         /* portfolio floor, as a fraction of gross notional */
    double im_multiplier;         /* portfolio initial = multiplier x maintenance */
    double perp_im_rate;
    double perp_mm_rate;
    double short_option_im_rate;
    double short_option_im_floor_rate;
    double short_option_mm_rate;
    double haircut_z;
    double haircut_liq_days;
    double haircut_conc_k;
    double haircut_max;
} margin_params;

typedef struct {
    int64_t underlying_count;
    const double *underlying_price;      /* S_u */
    const double *underlying_vol;        /* annualised implied vol sigma_u */
    const double *underlying_scan_range; /* R_u */
    int64_t asset_count;
    const double *asset_price;           /* P_a */
    const double *asset_base_haircut;
    const double *asset_depth;
    const double *asset_daily_vol;       /* v_a, already reduced from price history */
    int64_t chain_count;
} margin_market;

typedef struct {
    int64_t count;
    const int32_t *underlying;   /* index into the market's underlyings */
    const int32_t *kind;         /* MARGIN_KIND_* */
    const double *strike;        /* options only */
    const double *expiry_years;  /* options only: time to expiry T in years */
} margin_instruments;

/* Positions and collateral of all accounts in CSR form. */
typedef struct {
    int64_t account_count;
    const int64_t *position_offsets;   /* account_count + 1 entries */
    const int32_t *position_instrument;
    const int32_t *position_chain;
    const double *position_qty;
    const double *position_entry;
    const int64_t *collateral_offsets; /* account_count + 1 entries */
    const int32_t *collateral_asset;
    const double *collateral_amount;
} margin_book;

typedef struct {
    double *collateral_value; /* accounts */
    double *upnl;             /* accounts */
    double *equity;           /* accounts */
    double *im;               /* accounts x 4, row-major, MARGIN_MODE_* columns */
    double *mm;               /* accounts x 4 */
    double *required;         /* accounts x 4 */
    double *health;           /* accounts; NaN when portfolio mm is 0 */
    uint8_t *liquidatable;    /* accounts */
} margin_outputs;

/* Number of portfolio scenarios per underlying for these parameters. */
int64_t margin_scenario_count(const margin_params *params);

/* Size, in doubles, of the workspace margin_prepare/margin_compute need. */
int64_t margin_workspace_doubles(const margin_params *params, const margin_market *market,
                                 const margin_instruments *instruments);

/*
 * Price every instrument (mark, per-unit standard requirements, weighted scenario P&L per
 * unit) and every asset's haircut components into the workspace. Cheap: instruments x
 * scenarios option valuations. Must run again after any market change.
 */
int margin_prepare(const margin_params *params, const margin_market *market,
                   const margin_instruments *instruments, double *workspace,
                   int64_t *error_index);

/*
 * Margin for every account, or only for the accounts listed in account_subset (indices,
 * subset_count of them) when it is not NULL; other rows of the outputs are left untouched.
 * Requires a workspace filled by margin_prepare for the same params/market/instruments.
 */
int margin_compute(const margin_params *params, const margin_market *market,
                   const margin_instruments *instruments, const margin_book *book,
                   double *workspace, const int64_t *account_subset, int64_t subset_count,
                   margin_outputs *outputs, int64_t *error_index);

#endif
