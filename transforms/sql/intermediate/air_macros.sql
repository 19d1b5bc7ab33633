-- noqa: disable=LT02
-- (SQLFluff's duckdb dialect does not indent `create macro` bodies: LT02 would dedent them.)
-- Exact decimal helpers for the air models (temp macros: per connection, created on every run).
-- Means and rounding work on integers in micro-units (1e-6 of the unit, hugeint) so that a
-- value exactly on a rounding tie or an IAQI breakpoint is never nudged by binary floating point.

-- a / b rounded half to even (GB/T 8170 四舍六入五成双), b > 0; duckdb's // and % truncate.
create or replace temp macro air_hediv(a, b) as
    case
        when a >= 0 then a // b + case
            when 2 * (a % b) > b then 1
            when 2 * (a % b) < b then 0
            else (a // b) % 2
        end
        else -((-a) // b + case
            when 2 * ((-a) % b) > b then 1
            when 2 * ((-a) % b) < b then 0
            else ((-a) // b) % 2
        end)
    end;

-- decimal (scale <= 6) -> micro-units, and back (decimal * decimal is exact in duckdb).
create or replace temp macro air_micro(x) as (x::decimal(38, 6) * 1000000)::hugeint;

create or replace temp macro air_from_micro(m) as
    (m::decimal(38, 0) * 0.000001::decimal(7, 6))::decimal(18, 6);

-- mean of n values whose exact sum is s, rounded half to even to 1e-6.
create or replace temp macro air_mean6(s, n) as
    case when n > 0 then air_from_micro(air_hediv(air_micro(s), n::hugeint)) end;

-- x rounded half to even to `digits` decimals (0..6).
create or replace temp macro air_round(x, digits) as
    air_from_micro(
        air_hediv(air_micro(x), [1000000, 100000, 10000, 1000, 100, 10, 1][digits + 1]::hugeint)
        * [1000000, 100000, 10000, 1000, 100, 10, 1][digits + 1]::hugeint
    );

-- IAQI on one breakpoint segment, bp_lo <= c <= bp_hi, rounded UP (进位取整), in integers:
-- iaqi_lo + ceil((iaqi_hi - iaqi_lo) * (c - bp_lo) / (bp_hi - bp_lo)).
create or replace temp macro air_iaqi_segment(c, bp_lo, bp_hi, iaqi_lo, iaqi_hi) as
    iaqi_lo + (
        (iaqi_hi - iaqi_lo)::hugeint * (air_micro(c) - air_micro(bp_lo))
        + (air_micro(bp_hi) - air_micro(bp_lo)) - 1
    ) // (air_micro(bp_hi) - air_micro(bp_lo));
