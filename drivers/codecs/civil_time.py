"""Calendar arithmetic without the platform's time module.

MicroPython's time.mktime counts from 2000 on most ports and CPython's from
1970 in local time; sensors report UTC fields, so the conversion is done here
(H. Hinnant's days_from_civil, proleptic Gregorian, exact for any year).

MicroPython-compatible: no typing, no dataclasses.
"""


def days_from_civil(year, month, day):
    """Days since 1970-01-01 for a UTC calendar date."""
    if month <= 2:
        year -= 1
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(year, month):
    if month == 2:
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def epoch_seconds(year, month, day, hour, minute, second):
    """Unix time of a UTC date and time; `second` may carry a fraction."""
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
