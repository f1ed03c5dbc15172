//! `tokend admin apply` and `export`: clients declared in files, applied by the real binary to a
//! running server over gRPC, as a GitOps pipeline would.

use std::path::Path;

use serde_json::Value;
use tonic::Code;

use crate::admin_cli::{admin_cli, ok_json};
use crate::common::Backend;
use crate::helpers::*;

const CLIENTS: &str = "\
tenant: acme
clients:
  - name: billing
    description: invoices for the shop
    scopes: [read:invoices, write:invoices]
    audiences: [https://billing.internal]
    allowed_cidrs: [127.0.0.1, 10.0.1.6]
    rate_limit_per_minute: 5000
    refresh_rate_limit_per_minute: 30
    api_rate_limit_per_minute: 600
    access_token_ttl: 30m
    metadata: {team: payments}
  - name: reports
    scopes: [read:reports]
    access_token_format: opaque
    access_token_ttl: 7d
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The clients of `tenant` by name, as `clients list --output json` shows them.
async fn by_name(app: &TestApp, admin: &Creds, tenant: &str) -> Vec<(String, Value)> {
    let listed = ok_json(
        &admin_cli(
            app,
            admin,
            &["clients", "list", "--tenant", tenant, "--output", "json"],
        )
        .await,
    );
    let mut clients: Vec<(String, Value)> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    clients.sort_by(|a, b| a.0.cmp(&b.0));
    clients
}

fn named<'a>(clients: &'a [(String, Value)], name: &str) -> &'a Value {
    &clients.iter().find(|(n, _)| n == name).unwrap().1
}

async fn files_create_update_prune_and_a_second_run_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let admin = app.token(&root, &[]).await;
    let (manual, _) = app
        .create_client(&admin, client("acme", "made by hand", &["read:*"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "clients.yaml", CLIENTS);
    let secrets_dir = secrets.path().to_str().unwrap();

    // The plan, as a diff, and nothing changed.
    let out = admin_cli(&app, &root, &["apply", "-f", &file, "--dry-run"]).await;
    let (plan, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(plan.contains("+ acme/billing (new)"), "{plan}");
    assert!(plan.contains("+     rate_limit_per_minute: 5000"), "{plan}");
    assert!(plan.contains("plan: 2 to create, 0 to update, 0 to delete, 0 unchanged"));
    assert!(plan.contains("dry run: nothing changed"), "{plan}");
    assert_eq!(by_name(&app, &root, "acme").await.len(), 1);

    // New clients' secrets need somewhere to go other than the plan.
    let out = admin_cli(&app, &root, &["apply", "-f", &file]).await;
    assert_eq!(out.status.code(), Some(64), "{:?}", text(&out));
    assert!(text(&out).1.contains("--secrets-dir"), "{:?}", text(&out));
    assert_eq!(by_name(&app, &root, "acme").await.len(), 1);

    let apply = ["apply", "-f", &file, "--secrets-dir", secrets_dir];
    let out = admin_cli(&app, &root, &apply).await;
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("applied: 2 created, 0 updated, 0 deleted, 0 unchanged"));
    let clients = by_name(&app, &root, "acme").await;
    let billing = named(&clients, "billing");
    assert_eq!(billing["rate_limit_per_minute"], 5000);
    assert_eq!(billing["refresh_rate_limit_per_minute"], 30);
    assert_eq!(billing["api_rate_limit_per_minute"], 600);
    assert_eq!(billing["access_token_ttl_secs"], 1800);
    assert_eq!(billing["allowed_cidrs"][0], "10.0.1.6/32");
    assert_eq!(billing["metadata"]["tokend.managed-by"], "apply");
    assert_eq!(named(&clients, "reports")["access_token_format"], "opaque");
    assert!(
        named(&clients, "made by hand")["metadata"]
            .get("tokend.managed-by")
            .is_none()
    );
    // The secret went to a file only its owner reads, and it works.
    let secret_file = secrets.path().join("acme.billing.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let creds = Creds {
        client_id: billing["client_id"].as_str().unwrap().to_owned(),
        client_secret: std::fs::read_to_string(&secret_file)
            .unwrap()
            .trim()
            .to_owned(),
    };
    app.try_token(&creds, &["read:invoices"], &[])
        .await
        .expect("the written secret works");
    assert!(!said.contains(&creds.client_secret), "never in the plan");

    // The same files again: nothing to do.
    let out = admin_cli(&app, &root, &[&apply[..], &["--output", "json"]].concat()).await;
    let summary = ok_json(&out);
    assert_eq!(summary["counts"]["unchanged"], 2, "{summary}");
    assert_eq!(summary["changes"].as_array().unwrap().len(), 0, "{summary}");

    // Disabled in an incident: apply leaves it so unless the file says `active`.
    ok_json(
        &admin_cli(
            &app,
            &root,
            &["clients", "disable", &creds.client_id, "--output", "json"],
        )
        .await,
    );
    let out = admin_cli(&app, &root, &apply).await;
    assert!(text(&out).0.contains("2 unchanged"), "{:?}", text(&out));

    // One field changed in the file: only it is sent, shown as a diff first.
    let edited = CLIENTS
        .replace("rate_limit_per_minute: 5000", "rate_limit_per_minute: 1000")
        .replace("  - name: reports", "    active: true\n  - name: reports");
    write(dir.path(), "clients.yaml", &edited);
    let out = admin_cli(&app, &root, &["apply", "-f", &file, "--dry-run"]).await;
    let (plan, _) = text(&out);
    assert!(
        plan.contains(&format!("~ acme/billing ({})", creds.client_id)),
        "{plan}"
    );
    assert!(plan.contains("-     rate_limit_per_minute: 5000\n+     rate_limit_per_minute: 1000"));
    assert!(
        plan.contains("-     active: false\n+     active: true"),
        "{plan}"
    );
    assert!(plan.contains("1 to update"), "{plan}");
    let out = admin_cli(&app, &root, &apply).await;
    assert!(text(&out).0.contains("1 updated"), "{:?}", text(&out));
    let now = app.get_client(&admin, &creds.client_id).await;
    assert_eq!(now.rate_limit_per_minute, 1000);
    assert_eq!(now.refresh_rate_limit_per_minute, 30);
    assert_eq!(now.active, Some(true));

    // `reports` leaves the files: --prune deletes it, not the client made by hand.
    let only_billing = edited.split("  - name: reports").next().unwrap().to_owned();
    write(dir.path(), "clients.yaml", &only_billing);
    let out = admin_cli(&app, &root, &[&apply[..], &["--prune"]].concat()).await;
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("- acme/reports ("), "{said}");
    assert!(said.contains("1 deleted, 1 unchanged"), "{said}");
    let names: Vec<String> = by_name(&app, &root, "acme")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["billing", "made by hand"]);
    assert_eq!(
        app.get_client(&admin, &manual.client_id).await.name,
        "made by hand"
    );

    // Export writes today's clients; applying the export changes nothing.
    let out = admin_cli(&app, &root, &["export", "--tenant", "acme"]).await;
    let (exported, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        exported.contains("rate_limit_per_minute: 1000"),
        "{exported}"
    );
    assert!(exported.contains("access_token_ttl: 30m"), "{exported}");
    let export_file = write(dir.path(), "export.yml", &exported);
    let out = admin_cli(&app, &root, &["apply", "-f", &export_file, "--dry-run"]).await;
    assert!(
        text(&out)
            .0
            .contains("plan: 0 to create, 0 to update, 0 to delete, 2 unchanged"),
        "{:?}\n{exported}",
        text(&out)
    );
}

async fn a_bad_file_changes_nothing_and_names_file_entry_and_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a-good.yaml",
        "clients:\n  - {tenant: acme, name: good, scopes: [read:x]}\n",
    );
    let bad = write(
        dir.path(),
        "b-bad.yaml",
        "tenant: acme\nclients:\n  - name: ok\n  - name: typo\n    rate_limit: 5\n",
    );
    let folder = dir.path().to_str().unwrap();
    let apply = [
        "apply",
        "-f",
        folder,
        "--secrets-dir",
        secrets.path().to_str().unwrap(),
    ];
    let out = admin_cli(&app, &root, &apply).await;
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("b-bad.yaml") && err.contains("rate_limit"),
        "{err}"
    );

    // A value the server's rules refuse, found before anything is sent.
    write(
        dir.path(),
        "b-bad.yaml",
        "tenant: acme\nclients:\n  - name: ok\n  - name: wide\n    allowed_cidrs: [10.0.0.300]\n",
    );
    let out = admin_cli(&app, &root, &apply).await;
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&bad)
            && err.contains("clients[1] (acme/wide)")
            && err.contains("allowed_cidrs"),
        "{err}"
    );

    // Two entries for one client; an entry without a tenant.
    write(
        dir.path(),
        "b-bad.yaml",
        "clients:\n  - {tenant: acme, name: good}\n",
    );
    let out = admin_cli(&app, &root, &apply).await;
    assert!(
        text(&out).1.contains("declares the same client as"),
        "{:?}",
        text(&out)
    );
    write(dir.path(), "b-bad.yaml", "clients:\n  - {name: lost}\n");
    let out = admin_cli(&app, &root, &apply).await;
    assert!(
        text(&out).1.contains("tenant: is required"),
        "{:?}",
        text(&out)
    );

    // An id that is not registered.
    write(
        dir.path(),
        "b-bad.yaml",
        "clients:\n  - {tenant: acme, name: x, client_id: 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b}\n",
    );
    let out = admin_cli(&app, &root, &apply).await;
    assert_eq!(out.status.code(), Some(64), "{:?}", text(&out));
    assert!(text(&out).1.contains("client_id"), "{:?}", text(&out));

    // None of it reached the server, and no secret file was written.
    let listed = by_name(&app, &root, "acme").await;
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(std::fs::read_dir(secrets.path()).unwrap().count(), 0);
}

async fn secrets_as_kubernetes_manifests_and_matching_by_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let admin = app.token(&root, &[]).await;
    let (old, _) = app
        .create_client(&admin, client("acme", "old name", &["read:*"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "clients.yaml",
        &format!(
            "tenant: acme\nclients:\n  - name: worker\n    scopes: [read:jobs]\n  \
             - name: renamed\n    client_id: {}\n    scopes: ['read:*']\n",
            old.client_id
        ),
    );
    let out = admin_cli(
        &app,
        &root,
        &[
            "apply",
            "-f",
            &file,
            "--secrets-format",
            "k8s",
            "--secrets-namespace",
            "jobs",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // stdout holds only the manifests (for `kubectl apply -f -`); the plan went to stderr.
    assert!(stderr.contains("+ acme/worker (new)"), "{stderr}");
    assert!(
        stderr.contains(&format!("~ acme/renamed ({})", old.client_id)),
        "{stderr}"
    );
    let manifests: Vec<Value> = serde_norway::Deserializer::from_str(&stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(manifests.len(), 1, "{stdout}");
    let secret = &manifests[0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "tokend-acme-worker");
    assert_eq!(secret["metadata"]["namespace"], "jobs");
    let creds = Creds {
        client_id: secret["stringData"]["client_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        client_secret: secret["stringData"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    app.try_token(&creds, &["read:jobs"], &[])
        .await
        .expect("the manifest's secret works");
    assert_eq!(
        app.get_client(&admin, &old.client_id).await.name,
        "renamed",
        "matched by client_id, the name follows the file"
    );
    // A client of another tenant cannot be claimed by id.
    let (theirs, _) = app
        .create_client(&admin, client("globex", "theirs", &["read:*"]))
        .await;
    write(
        dir.path(),
        "clients.yaml",
        &format!(
            "tenant: acme\nclients:\n  - {{name: theirs, client_id: {}}}\n",
            theirs.client_id
        ),
    );
    let out = admin_cli(&app, &root, &["apply", "-f", &file, "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(64), "{:?}", text(&out));
    assert!(text(&out).1.contains("globex"), "{:?}", text(&out));
    let err = app
        .try_token(&creds, &["write:jobs"], &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

for_each_backend!(
    files_create_update_prune_and_a_second_run_changes_nothing,
    a_bad_file_changes_nothing_and_names_file_entry_and_field,
    secrets_as_kubernetes_manifests_and_matching_by_id,
);
