package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/useda02/hyperviseur/dashboard"
	"github.com/useda02/hyperviseur/internal/users"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/registry"
)

// cliActor is who the audit log says made a change from the command line.
const cliActor = "cli"

// statePath is the shared state database.
func statePath(cfg *Config) string { return filepath.Join(cfg.Storage.Path, "state.db") }

// openUsers opens the user store, checking EPCI codes against the territory.
func openUsers(cfg *Config, territory *registry.Territory) (*users.Store, error) {
	if err := os.MkdirAll(cfg.Storage.Path, 0o750); err != nil {
		return nil, fmt.Errorf("storage.path %s: %w", cfg.Storage.Path, err)
	}
	st, err := users.Open(statePath(cfg), users.Options{KnownEPCI: func(code string) bool {
		_, ok := territory.EPCI(code)
		return ok
	}})
	if err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	return st, nil
}

// accountsService is the running user accounts: the store, the HTTP side and the audit log they write to.
type accountsService struct {
	store    *users.Store
	accounts *dashboard.Accounts
	audit    dashboard.AuditLog
	closers  []func() error
}

func (a *accountsService) Close() {
	for _, c := range a.closers {
		_ = c()
	}
}

// startAccounts opens the user store, creates the bootstrap admin when there is no user, and picks the
// audit log: the lighting service's when it runs, else the same table opened on its own.
func startAccounts(ctx context.Context, cfg *Config, reg *registry.Registry, lights *lightingService, promReg prometheus.Registerer,
	log *slog.Logger) (*accountsService, error) {
	st, err := openUsers(cfg, reg.Territory())
	if err != nil {
		return nil, err
	}
	a := &accountsService{store: st, closers: []func() error{st.Close}}
	if lights != nil {
		a.audit = lights.db
	} else {
		db, err := lighting.OpenDB(statePath(cfg))
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("storage.path: audit log: %w", err)
		}
		a.audit, a.closers = db, append(a.closers, db.Close)
	}
	created, source, err := bootstrapAdmin(ctx, st, cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	if created {
		log.Info("no user yet: bootstrap user admin created", "password_from", source)
		if err := a.audit.Audit(ctx, lighting.AuditEntry{At: time.Now(), Actor: "hyperviseur", Action: "user.create", Target: "admin",
			Detail: "bootstrap: role admin, password from " + source, Outcome: "ok"}); err != nil {
			log.Error("audit entry lost", "action", "user.create", "err", err)
		}
	}
	a.accounts = dashboard.NewAccounts(st, dashboard.AccountsOptions{
		Idle: cfg.Auth.SessionIdle, Max: cfg.Auth.SessionMax, SecureCookies: cfg.HTTP.SecureCookies,
	}, log.With("component", "auth"))
	if promReg != nil {
		promReg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hv_login_failures_total",
				Help: "Failed dashboard logins (unknown user, wrong password, disabled account)."},
				func() float64 { return float64(a.accounts.Failures()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hv_login_lockouts_total",
				Help: "Dashboard logins locked after repeated failures, per user name or client address."},
				func() float64 { return float64(a.accounts.Lockouts()) }))
	}
	return a, nil
}

// bootstrapAdmin creates the user "admin" when the store has no user, with auth.admin_password or else a
// generated password written to <storage.path>/admin.password (0600) and reused from there if present.
// It returns whether it did and where the password came from; the password itself is never logged.
func bootstrapAdmin(ctx context.Context, st *users.Store, cfg *Config) (bool, string, error) {
	n, err := st.Count(ctx)
	if err != nil {
		return false, "", fmt.Errorf("auth: bootstrap admin: %w", err)
	}
	if n > 0 {
		return false, "", nil
	}
	password, source := cfg.Auth.AdminPassword, "auth.admin_password"
	if password == "" {
		path := filepath.Join(cfg.Storage.Path, "admin.password")
		if password, err = bootstrapPassword(path); err != nil {
			return false, "", fmt.Errorf("auth: bootstrap admin password: %w", err)
		}
		source = path
	}
	if _, err := st.Add(ctx, users.User{Name: "admin", Role: users.RoleAdmin}, password); err != nil {
		return false, "", fmt.Errorf("auth: bootstrap admin (password from %s): %w", source, err)
	}
	return true, source, nil
}

// bootstrapPassword reuses the password file if present, else writes a new generated password to it.
func bootstrapPassword(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(trimNewline(b)) > 0 {
		return string(trimNewline(b)), nil
	}
	p, err := users.GeneratePassword()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(p+"\n"), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// recordCLI appends to the audit log from a command; the audit table lives in the lighting migrations of
// the shared state database. A failure is reported, not fatal: the change itself is done.
func recordCLI(ctx context.Context, cfg *Config, action, target, detail string) {
	db, err := lighting.OpenDB(statePath(cfg))
	if err == nil {
		err = db.Audit(ctx, lighting.AuditEntry{At: time.Now(), Actor: cliActor, Action: action, Target: target, Detail: detail, Outcome: "ok"})
		db.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hyperviseur: warning: audit entry not written:", err)
	}
}

// loadTLS reads the configured certificate at start, so that a bad one fails before serving, naming the key.
func loadTLS(cfg *Config) (*tls.Config, error) {
	if cfg.HTTP.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("http.tls_cert, http.tls_key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// usersCmd manages the dashboard's users in the state database (<storage.path>/state.db); the service may be
// running meanwhile.
func usersCmd(configFile *string) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage dashboard users and their API tokens"}
	// open loads the configuration and the user store; the caller closes it.
	open := func() (*Config, *users.Store, error) {
		cfg, err := LoadConfig(*configFile)
		if err != nil {
			return nil, nil, err
		}
		territory, err := registry.DefaultTerritory()
		if err != nil {
			return nil, nil, err
		}
		st, err := openUsers(cfg, territory)
		return cfg, st, err
	}

	var role string
	var epcis []string
	var fromStdin bool
	add := &cobra.Command{
		Use:   "add <name> --role R [--epci CODE]… [--password-stdin]",
		Short: "Create a user; without --password-stdin a strong password is generated and printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			password, generated, err := readPassword(c.InOrStdin(), fromStdin)
			if err != nil {
				return err
			}
			u, err := st.Add(c.Context(), users.User{Name: args[0], Role: role, EPCIs: epcis}, password)
			if err != nil {
				return err
			}
			recordCLI(c.Context(), cfg, "user.create", u.Name, describeUser(u))
			out := c.OutOrStdout()
			fmt.Fprintf(out, "user %s created (%s)\n", u.Name, describeUser(u))
			if generated {
				fmt.Fprintf(out, "password: %s\n(shown once: give it to the user)\n", password)
			}
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, technicien, pilote or lecteur")
	add.Flags().StringArrayVar(&epcis, "epci", nil, "EPCI SIREN code (repeatable): required for a pilote, optional for a lecteur")
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	_ = add.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their API tokens",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			all, err := st.List(c.Context())
			if err != nil {
				return err
			}
			tokens, err := st.Tokens(c.Context(), "")
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tEPCIS\tSTATE\tTOKENS\tUPDATED")
			for _, u := range all {
				state := "active"
				if u.Disabled {
					state = "disabled"
				}
				var labels []string
				for _, t := range tokens {
					if t.User == u.Name {
						labels = append(labels, t.Label)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, dash(strings.Join(u.EPCIs, ",")), state,
					dash(strings.Join(labels, ",")), u.Updated.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}

	var passwdStdin bool
	passwd := &cobra.Command{
		Use:   "passwd <name> [--password-stdin]",
		Short: "Set a user's password (generated and printed once without --password-stdin); ends its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			password, generated, err := readPassword(c.InOrStdin(), passwdStdin)
			if err != nil {
				return err
			}
			if err := st.SetPassword(c.Context(), args[0], password); err != nil {
				return err
			}
			recordCLI(c.Context(), cfg, "user.password", args[0], "sessions ended")
			fmt.Fprintf(c.OutOrStdout(), "password of %s changed; its sessions are ended\n", args[0])
			if generated {
				fmt.Fprintf(c.OutOrStdout(), "password: %s\n(shown once: give it to the user)\n", password)
			}
			return nil
		},
	}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the password from the first line of standard input")

	disable := &cobra.Command{
		Use:   "disable <name>",
		Short: "Disable a user: its sessions end and its tokens stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			yes := true
			u, err := st.Update(c.Context(), args[0], users.Change{Disabled: &yes})
			if err != nil {
				return err
			}
			recordCLI(c.Context(), cfg, "user.update", u.Name, describeUser(u))
			fmt.Fprintf(c.OutOrStdout(), "user %s disabled\n", u.Name)
			return nil
		},
	}

	var label string
	token := &cobra.Command{
		Use:   "token <name> --label L",
		Short: "Create an API token acting as the user (for a machine); the token is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			plain, t, err := st.CreateToken(c.Context(), args[0], label)
			if err != nil {
				return err
			}
			recordCLI(c.Context(), cfg, "token.create", t.User, "label "+t.Label)
			fmt.Fprintf(c.OutOrStdout(), "token: %s\n(shown once; use it as Authorization: Bearer <token>)\n", plain)
			return nil
		},
	}
	token.Flags().StringVar(&label, "label", "", "what the token is for (unique per user)")
	_ = token.MarkFlagRequired("label")

	cmd.AddCommand(add, list, passwd, disable, token)
	return cmd
}

// readPassword reads the first line of in when fromStdin, else generates a password.
func readPassword(in io.Reader, fromStdin bool) (password string, generated bool, err error) {
	if !fromStdin {
		p, err := users.GeneratePassword()
		return p, true, err
	}
	line, err := bufio.NewReader(io.LimitReader(in, users.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("--password-stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", false, errors.New("--password-stdin: no password on standard input")
	}
	if err := users.CheckPasswordPolicy(line); err != nil {
		return "", false, fmt.Errorf("--password-stdin: %w", err)
	}
	return line, false, nil
}

func describeUser(u users.User) string {
	d := "role " + u.Role
	if len(u.EPCIs) > 0 {
		d += ", epcis " + strings.Join(u.EPCIs, " ")
	}
	if u.Disabled {
		d += ", disabled"
	}
	return d
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
