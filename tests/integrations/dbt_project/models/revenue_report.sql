select revenue from {{ ref('revenue') }}
