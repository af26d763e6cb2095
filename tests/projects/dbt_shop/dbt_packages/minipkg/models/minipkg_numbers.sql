select range as n, {{ twice('range') }} as doubled from range(3)
