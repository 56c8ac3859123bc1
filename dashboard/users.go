package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/internal/users"
	"github.com/useda02/hyperviseur/lighting"
)

// AuditLog is the service's audit log: lighting control writes to it, and so do logins, logouts and user
// changes, so /api/v1/audit shows them together. *lighting.DB is one (the table lives in the lighting
// migrations, in the shared state database).
type AuditLog interface {
	Audit(ctx context.Context, e lighting.AuditEntry) error
	AuditLog(ctx context.Context, f lighting.AuditFilter) ([]lighting.AuditEntry, error)
}

var _ AuditLog = (*lighting.DB)(nil)

// auditLog is Deps.Audit, else the lighting service's; nil when there is neither.
func (s *Server) auditLog() AuditLog {
	if s.deps.Audit != nil {
		return s.deps.Audit
	}
	if s.deps.Lighting != nil {
		return s.deps.Lighting.DB()
	}
	return nil
}

// record appends an audit entry; a failure to write it is logged, never the request's failure. Entries
// never hold a password, a token or a session id.
func (s *Server) record(r *http.Request, e lighting.AuditEntry) {
	al := s.auditLog()
	if al == nil {
		s.log.Info("audit", "actor", e.Actor, "action", e.Action, "target", e.Target, "detail", e.Detail, "outcome", e.Outcome)
		return
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	// Not the request's context: a client hanging up must not lose the entry.
	if err := al.Audit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit entry lost", "action", e.Action, "target", e.Target, "err", err)
	}
}

// userView is a user as the admin API shows it, with its tokens (never their value).
type userView struct {
	users.User
	Tokens   []users.Token `json:"tokens"`
	Password string        `json:"password,omitempty"` // a generated password, in the creation's answer only
}

func (s *Server) accountsOn(w http.ResponseWriter) bool {
	if s.deps.Accounts == nil {
		writeError(w, http.StatusNotFound, "user accounts not enabled")
		return false
	}
	return true
}

// usersFail answers an error of the user store with its status.
func (s *Server) usersFail(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, users.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, users.ErrExists), errors.Is(err, users.ErrLastAdmin):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, hv.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Error("users api", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !s.accountsOn(w) {
		return
	}
	st := s.deps.Accounts.store
	list, err := st.List(r.Context())
	if err != nil {
		s.usersFail(w, err)
		return
	}
	tokens, err := st.Tokens(r.Context(), "")
	if err != nil {
		s.usersFail(w, err)
		return
	}
	byUser := map[string][]users.Token{}
	for _, t := range tokens {
		byUser[t.User] = append(byUser[t.User], t)
	}
	out := make([]userView, 0, len(list))
	for _, u := range list {
		out = append(out, view(u, byUser[u.Name]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func view(u users.User, tokens []users.Token) userView {
	if u.EPCIs == nil {
		u.EPCIs = []string{}
	}
	if tokens == nil {
		tokens = []users.Token{}
	}
	return userView{User: u, Tokens: tokens}
}

type newUser struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	EPCIs    []string `json:"epcis"`
	Password string   `json:"password"` // empty: one is generated and answered once
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.accountsOn(w) {
		return
	}
	var req newUser
	if err := decodeBody(r, &req); err != nil {
		s.usersFail(w, err)
		return
	}
	generated := req.Password == ""
	if generated {
		var err error
		if req.Password, err = users.GeneratePassword(); err != nil {
			s.usersFail(w, err)
			return
		}
	}
	u, err := s.deps.Accounts.store.Add(r.Context(), users.User{Name: req.Name, Role: req.Role, EPCIs: req.EPCIs}, req.Password)
	if err != nil {
		s.usersFail(w, err)
		return
	}
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "user.create", Target: u.Name, Detail: describe(u), Outcome: "ok"})
	v := view(u, nil)
	if generated {
		v.Password = req.Password
	}
	writeJSON(w, http.StatusCreated, v)
}

// userPatch edits a user; absent fields are kept.
type userPatch struct {
	Role     *string   `json:"role"`
	EPCIs    *[]string `json:"epcis"`
	Disabled *bool     `json:"disabled"`
	Password *string   `json:"password"`
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.accountsOn(w) {
		return
	}
	var req userPatch
	if err := decodeBody(r, &req); err != nil {
		s.usersFail(w, err)
		return
	}
	st, name := s.deps.Accounts.store, r.PathValue("name")
	if req.Password != nil {
		// Checked first, so that a refused password leaves the user as it was.
		if err := users.CheckPasswordPolicy(*req.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	u, err := st.Update(r.Context(), name, users.Change{Role: req.Role, EPCIs: req.EPCIs, Disabled: req.Disabled})
	if err != nil {
		s.usersFail(w, err)
		return
	}
	if req.Role != nil || req.EPCIs != nil || req.Disabled != nil {
		s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "user.update", Target: name, Detail: describe(u), Outcome: "ok"})
	}
	if req.Password != nil {
		if err := st.SetPassword(r.Context(), name, *req.Password); err != nil {
			s.usersFail(w, err)
			return
		}
		s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "user.password", Target: name, Detail: "sessions ended", Outcome: "ok"})
	}
	tokens, err := st.Tokens(r.Context(), name)
	if err != nil {
		s.usersFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(u, tokens))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.accountsOn(w) {
		return
	}
	name := r.PathValue("name")
	if err := s.deps.Accounts.store.Delete(r.Context(), name); err != nil {
		s.usersFail(w, err)
		return
	}
	s.record(r, lighting.AuditEntry{Actor: p.Name, Action: "user.delete", Target: name, Detail: "tokens and sessions removed", Outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
}

// describe is a user's rights in one line of the audit log.
func describe(u users.User) string {
	d := fmt.Sprintf("role %s", u.Role)
	if len(u.EPCIs) > 0 {
		d += ", epcis " + strings.Join(u.EPCIs, " ")
	}
	if u.Disabled {
		d += ", disabled"
	}
	return d
}
