"""Operations: what people running a fleet ask next (which devices went quiet, why a day's total
changed), answered on their own schedule from small tables, never inside the pipeline's runs."""
