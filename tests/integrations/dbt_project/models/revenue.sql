-- Fails: 'n/a' is not a number (DuckDB's Conversion Error).
select sum(cast(amount as decimal(10, 2))) as revenue from {{ ref('stg_orders') }}
