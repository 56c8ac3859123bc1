package rules

import (
	"context"
	"errors"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

type fakeUpdater struct {
	calls []time.Time
	conds [][]Condition
	err   error
}

func (f *fakeUpdater) Update(_ context.Context, now time.Time, _ RuleSpec, conds []Condition) error {
	f.calls = append(f.calls, now)
	f.conds = append(f.conds, conds)
	return f.err
}

// TestDaily: one evaluation per Paris day from the hour on; a failing find or update is retried.
func TestDaily(t *testing.T) {
	ctx := context.Background()
	up := &fakeUpdater{}
	finds := 0
	var findErr error
	find := func(context.Context, time.Time) ([]Condition, error) {
		finds++
		if findErr != nil {
			return nil, findErr
		}
		return []Condition{{Labels: map[string]string{"site": "s"}}}, nil
	}
	d, err := NewDaily(RuleSpec{Name: "quotidienne"}, 6, find, up)
	if err != nil {
		t.Fatal(err)
	}
	paris := func(day, hour int) time.Time { return time.Date(2026, 5, day, hour, 30, 0, 0, parisLoc()) }
	for _, c := range []struct {
		name    string
		at      time.Time
		findErr error
		upErr   error
		ran     bool
		wantErr bool
	}{
		{"before the hour", paris(10, 5), nil, nil, false, false},
		{"find fails", paris(10, 6), hv.ErrUnavailable, nil, false, true},
		{"update fails", paris(10, 7), nil, errors.New("disk full"), false, true},
		{"retried", paris(10, 8), nil, nil, true, false},
		{"done today", paris(10, 23), nil, nil, false, false},
		// 00:30 Paris on the 11th is still the 10th in UTC: the day is Paris's.
		{"next Paris day, before the hour", paris(11, 0), nil, nil, false, false},
		{"next day", paris(11, 6), nil, nil, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			findErr, up.err = c.findErr, c.upErr
			ran, err := d.Eval(ctx, c.at)
			if ran != c.ran || (err != nil) != c.wantErr {
				t.Errorf("Eval at %s: ran %v err %v, want ran %v error %v", c.at, ran, err, c.ran, c.wantErr)
			}
		})
	}
	if finds != 4 || len(up.calls) != 3 {
		t.Errorf("%d finds, %d updates; want 4 finds (one failed) and 3 updates (one failed)", finds, len(up.calls))
	}
	if _, err := NewDaily(RuleSpec{Name: "x"}, 24, find, up); err == nil {
		t.Error("hour 24 accepted")
	}
}
