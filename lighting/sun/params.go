package sun

import (
	"errors"
	"fmt"
	"time"
)

// MaxDays bounds one request: a leap year and a day.
const MaxDays = 367

// ParseRange reads the from date (YYYY-MM-DD, a Paris civil date; empty = today in Paris at now) and the
// number of days (1–MaxDays), as the API and the CLI take them. Errors name the parameter.
func ParseRange(from string, days int, now time.Time) (time.Time, int, error) {
	start := now.In(Paris())
	if from != "" {
		d, err := time.ParseInLocation(time.DateOnly, from, Paris())
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("from: want a date YYYY-MM-DD, got %q", from)
		}
		start = d
	}
	if days < 1 || days > MaxDays {
		return time.Time{}, 0, errors.New("days: want 1 to 367")
	}
	return start, days, nil
}
