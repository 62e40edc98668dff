#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;

fn name(s: &str) -> ArtifactName {
    ArtifactName::parse(s).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("store"));
    (dir, store)
}

/// Every entry under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{rel}{}", entry.file_name().to_string_lossy());
            let is_dir = entry.file_type().unwrap().is_dir();
            out.push(name.clone());
            if is_dir {
                go(&entry.path(), &format!("{name}/"), out);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        go(root, "", &mut out);
    }
    out.sort();
    out
}

fn has_partials(root: &Path) -> bool {
    tree(root).iter().any(|p| p.contains(".partial-"))
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Commits a directory artifact with nested files; returns the files.
async fn commit_dir(store: &LocalStore, n: &str) -> Vec<(&'static str, Vec<u8>)> {
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        ("toc.dat", b"table of contents".to_vec()),
        ("sub/3001.dat", vec![7u8; 300_000]),
        ("sub/deeper/3002.dat", b"".to_vec()),
        ("sub/deeper/b.dat", b"bee".to_vec()),
    ];
    let pending = store
        .begin(&name(n), ArtifactKind::Directory)
        .await
        .unwrap();
    for (rel, bytes) in &files {
        let path = pending.path().join(rel);
        tokio::fs::create_dir_all(path.parent().unwrap())
            .await
            .unwrap();
        tokio::fs::write(path, bytes).await.unwrap();
    }
    tokio::fs::create_dir(pending.path().join("empty"))
        .await
        .unwrap();
    pending
        .commit(meta(&[("format", "directory")]))
        .await
        .unwrap();
    files
}

#[tokio::test]
async fn file_artifact_is_written_listed_got_and_verified() {
    let (_dir, store) = store();
    let n = name("postgres/app/2025-01-31.dump");
    let pending = store.begin(&n, ArtifactKind::File).await.unwrap();
    assert!(pending.path().exists(), "an empty file to overwrite");
    assert_eq!(pending.name(), &n);
    let body = b"PGDMP custom format, pretend".repeat(10_000);
    tokio::fs::write(pending.path(), &body).await.unwrap();
    let manifest = pending
        .commit(meta(&[("target", "app"), ("format", "custom")]))
        .await
        .unwrap();

    assert_eq!(manifest.name, n.as_str());
    assert_eq!(manifest.kind, ArtifactKind::File);
    assert_eq!(manifest.size_bytes, body.len() as u64);
    assert_eq!(manifest.sha256, sha256(&body));
    assert_eq!(
        manifest.files,
        vec![FileEntry {
            path: "2025-01-31.dump".into(),
            size_bytes: body.len() as u64,
            sha256: sha256(&body),
        }]
    );
    assert!(manifest.created_at <= manifest.completed_at);
    assert_eq!(
        manifest.metadata.get("target").map(String::as_str),
        Some("app")
    );

    let root = store.root();
    assert_eq!(
        tree(root),
        [
            "postgres",
            "postgres/app",
            "postgres/app/2025-01-31.dump",
            "postgres/app/2025-01-31.dump.manifest.json",
        ]
    );
    let on_disk: Manifest = serde_json::from_slice(
        &std::fs::read(root.join("postgres/app/2025-01-31.dump.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk, manifest);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "root is private");
    }

    assert_eq!(store.list("").await.unwrap(), vec![manifest.clone()]);
    assert_eq!(store.list("postgres/").await.unwrap().len(), 1);
    assert_eq!(store.list("postgres/app/2025-").await.unwrap().len(), 1);
    assert!(store.list("postgres/other/").await.unwrap().is_empty());
    assert!(store.list("mongo").await.unwrap().is_empty());
    assert!(store.list("../").await.unwrap().is_empty());
    assert_eq!(store.get(&n).await.unwrap(), Some(manifest));
    assert_eq!(store.get(&name("postgres/app/nope")).await.unwrap(), None);
    assert_eq!(store.get(&name("nowhere/x")).await.unwrap(), None);
    let report = store.verify(&n).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.problems.is_empty());
    let local = store.local_path(&n).unwrap();
    assert_eq!(std::fs::read(local).unwrap(), body);
}

#[tokio::test]
async fn directory_artifact_is_written_listed_got_and_verified() {
    let (_dir, store) = store();
    let files = commit_dir(&store, "pg/app/dir-dump").await;
    let manifest = store.get(&name("pg/app/dir-dump")).await.unwrap().unwrap();
    assert_eq!(manifest.kind, ArtifactKind::Directory);
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sub/3001.dat",
            "sub/deeper/3002.dat",
            "sub/deeper/b.dat",
            "toc.dat"
        ],
        "sorted, empty folders left out"
    );
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(manifest.size_bytes, total as u64);
    // The canonical listing, by hand.
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let listing: String = sorted
        .iter()
        .map(|(rel, bytes)| format!("{rel}\t{}\t{}\n", bytes.len(), sha256(bytes)))
        .collect();
    assert_eq!(manifest.sha256, sha256(listing.as_bytes()));
    assert_eq!(manifest.sha256, directory_digest(&manifest.files));

    // A file artifact beside it; list is sorted by name.
    let pending = store
        .begin(&name("pg/app/a.sql"), ArtifactKind::File)
        .await
        .unwrap();
    tokio::fs::write(pending.path(), b"select 1;")
        .await
        .unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    let names: Vec<String> = store
        .list("pg/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["pg/app/a.sql", "pg/app/dir-dump"]);
    // Not inside the directory artifact's data.
    assert!(store.list("pg/app/dir-dump/").await.unwrap().is_empty());

    let report = store.verify(&name("pg/app/dir-dump")).await.unwrap();
    assert!(report.ok, "{report:?}");
    let local = store.local_path(&name("pg/app/dir-dump")).unwrap();
    assert_eq!(
        std::fs::read(local.join("sub/deeper/b.dat")).unwrap(),
        b"bee"
    );
}

#[tokio::test]
async fn a_flipped_byte_is_reported() {
    let (_dir, store) = store();
    commit_dir(&store, "d").await;
    let file = store.local_path(&name("d")).unwrap().join("sub/3001.dat");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[12_345] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let report = store.verify(&name("d")).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(
        report.problems[0].contains("`sub/3001.dat` has SHA-256"),
        "{report:?}"
    );
    assert!(
        report.problems[0].contains("the manifest says"),
        "{report:?}"
    );

    // Missing and extra files, a changed size.
    let data = store.local_path(&name("d")).unwrap();
    std::fs::remove_file(data.join("toc.dat")).unwrap();
    std::fs::write(data.join("extra"), b"x").unwrap();
    std::fs::write(data.join("sub/deeper/b.dat"), b"beee").unwrap();
    let problems = store.verify(&name("d")).await.unwrap().problems.join("\n");
    assert!(problems.contains("`toc.dat` is missing"), "{problems}");
    assert!(
        problems.contains("`extra` is not in the manifest"),
        "{problems}"
    );
    assert!(
        problems.contains("`sub/deeper/b.dat` is 4 bytes, the manifest says 3"),
        "{problems}"
    );

    // A file artifact.
    let pending = store
        .begin(&name("f.bin"), ArtifactKind::File)
        .await
        .unwrap();
    tokio::fs::write(pending.path(), b"hello").await.unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    std::fs::write(store.local_path(&name("f.bin")).unwrap(), b"hellp").unwrap();
    let report = store.verify(&name("f.bin")).await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems[0].starts_with("`f.bin` has SHA-256"),
        "{report:?}"
    );

    // Data gone.
    std::fs::remove_file(store.local_path(&name("f.bin")).unwrap()).unwrap();
    let report = store.verify(&name("f.bin")).await.unwrap();
    assert!(report.problems[0].contains("is missing"), "{report:?}");

    assert!(matches!(
        store.verify(&name("nope")).await,
        Err(ArtifactError::NotFound(_))
    ));
}

#[tokio::test]
async fn delete_removes_the_manifest_then_the_data() {
    let (_dir, store) = store();
    commit_dir(&store, "a/dir").await;
    let pending = store
        .begin(&name("a/file"), ArtifactKind::File)
        .await
        .unwrap();
    tokio::fs::write(pending.path(), b"x").await.unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();

    store.delete(&name("a/dir")).await.unwrap();
    store.delete(&name("a/file")).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(store.get(&name("a/dir")).await.unwrap(), None);
    assert_eq!(tree(store.root()), ["a"]);
    let err = store.delete(&name("a/dir")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound(_)), "{err}");
    let message = err.to_string();
    assert!(message.contains("`a/dir`"), "{message}");
    assert!(
        message.contains(&store.root().display().to_string()),
        "{message}"
    );
}

#[test]
fn hostile_names_are_refused() {
    let long = "a".repeat(600);
    let long_segment = "a".repeat(200);
    let cases: &[(&str, &str)] = &[
        ("", "is empty"),
        ("../x", "`..` segment"),
        ("a/../../x", "`..` segment"),
        ("..", "`..` segment"),
        ("/abs", "must be relative"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/./b", "`.` segment"),
        ("a\0b", "NUL byte"),
        (&long, "600 bytes long"),
        (&long_segment, "segment of 200 bytes"),
        ("a\\b", "contains '\\\\'"),
        ("a b", "contains ' '"),
        ("é", "contains 'é'"),
        ("a\nb", "contains '\\n'"),
        (".hidden", "starts with `.`"),
        ("a/.x.partial-0", "starts with `.`"),
        ("x.manifest.json", "ends with `.manifest.json`"),
        ("x.manifest.json/y", "ends with `.manifest.json`"),
    ];
    for (input, problem) in cases {
        match ArtifactName::parse(input) {
            Err(ArtifactError::InvalidName(message)) => {
                assert!(message.contains(problem), "{input:?}: {message}");
            }
            other => panic!("{input:?} was not refused: {other:?}"),
        }
    }
    let message = ArtifactName::parse(&long).unwrap_err().to_string();
    assert!(message.len() < 200, "long names are cut: {message}");
    for ok in [
        "a",
        "pg/app/2025-01-31T02-00-00Z.dump",
        "a.b/c_d/E-9",
        "x...y",
        "a-",
    ] {
        assert_eq!(ArtifactName::parse(ok).unwrap().as_str(), ok);
    }
    assert_eq!(name("a/b/c.tar").file_name(), "c.tar");
}

#[tokio::test]
async fn an_uncommitted_write_is_invisible_and_removed() {
    let (_dir, store) = store();
    let root = store.root().to_path_buf();

    // Abort.
    let pending = store.begin(&name("p/x"), ArtifactKind::File).await.unwrap();
    std::fs::write(pending.path(), b"half").unwrap();
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(store.get(&name("p/x")).await.unwrap(), None);
    assert!(matches!(
        store.verify(&name("p/x")).await,
        Err(ArtifactError::NotFound(_))
    ));
    let partial = pending.path().to_path_buf();
    assert!(
        partial
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".x.partial-"),
        "{}",
        partial.display()
    );
    pending.abort().await;
    assert!(!partial.exists());
    assert!(!has_partials(&root));

    // Drop, for a directory.
    let pending = store
        .begin(&name("p/x"), ArtifactKind::Directory)
        .await
        .unwrap();
    std::fs::write(pending.path().join("f"), b"half").unwrap();
    drop(pending);
    eventually("the dropped write's data is removed", || {
        !has_partials(&root)
    })
    .await;

    // Sweep leaves a live write alone, even with no age limit. (The dropped
    // write's reservation ends just after its background cleanup: retry.)
    let mut tries = 0;
    let pending = loop {
        match store.begin(&name("p/x"), ArtifactKind::File).await {
            Ok(p) => break p,
            Err(ArtifactError::AlreadyExists(_)) if tries < 500 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    std::fs::write(pending.path(), b"live").unwrap();
    assert!(store.sweep(Duration::ZERO).await.unwrap().is_empty());
    // ...and a second write of the same name is refused meanwhile.
    let err = store
        .begin(&name("p/x"), ArtifactKind::File)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::AlreadyExists(_)), "{err}");
    let err = store
        .begin(&name("p/x/y"), ArtifactKind::File)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::AlreadyExists(_)), "{err}");
    pending.commit(BTreeMap::new()).await.unwrap();
    assert_eq!(store.list("").await.unwrap().len(), 1);

    // A crashed write (no live owner): swept, once old enough.
    let crashed = root
        .join("p")
        .join(format!(".y.partial-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir(&crashed).unwrap();
    std::fs::write(crashed.join("f"), b"crashed").unwrap();
    let crashed_manifest = root
        .join("p")
        .join(format!(".y.manifest.json.partial-{}", uuid::Uuid::now_v7()));
    std::fs::write(&crashed_manifest, b"{").unwrap();
    assert!(
        store
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| m.name != "p/y")
    );
    assert!(
        store
            .sweep(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    let mut removed = store.sweep(Duration::ZERO).await.unwrap();
    removed.sort();
    let mut expected = vec![crashed, crashed_manifest];
    expected.sort();
    assert_eq!(removed, expected);
    // Other dot-files are not the store's.
    std::fs::write(root.join(".keep"), b"").unwrap();
    assert!(store.sweep(Duration::ZERO).await.unwrap().is_empty());
    assert!(store.verify(&name("p/x")).await.unwrap().ok);
}

#[tokio::test]
async fn data_without_a_manifest_is_not_listed_and_is_swept() {
    let (_dir, store) = store();
    commit_dir(&store, "pg/kept").await;
    let root = store.root().to_path_buf();
    // As if the agent died between moving the data in and writing the
    // manifest: a file, a folder, and a folder that only held leftovers.
    std::fs::write(root.join("pg/orphan.dump"), b"data").unwrap();
    std::fs::create_dir_all(root.join("pg/orphan-dir/sub")).unwrap();
    std::fs::write(root.join("pg/orphan-dir/sub/f"), b"data").unwrap();
    std::fs::create_dir_all(root.join("old/empty")).unwrap();

    let names: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["pg/kept"]);
    assert_eq!(store.get(&name("pg/orphan.dump")).await.unwrap(), None);
    assert!(matches!(
        store.delete(&name("pg/orphan.dump")).await,
        Err(ArtifactError::NotFound(_))
    ));

    assert!(
        store
            .sweep(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    let mut removed = store.sweep(Duration::ZERO).await.unwrap();
    removed.sort();
    assert_eq!(
        removed,
        [
            root.join("old"),
            root.join("pg/orphan-dir"),
            root.join("pg/orphan.dump")
        ]
    );
    assert!(store.verify(&name("pg/kept")).await.unwrap().ok);
    assert_eq!(
        tree(&root)
            .iter()
            .filter(|p| p.starts_with("pg/kept/"))
            .count(),
        7
    );
}

#[tokio::test]
async fn a_new_write_replaces_leftover_data() {
    let (_dir, store) = store();
    let root = store.root().to_path_buf();
    std::fs::create_dir_all(root.join("pg")).unwrap();
    std::fs::write(root.join("pg/x"), b"stale").unwrap();
    std::fs::create_dir_all(root.join("pg/d/sub")).unwrap();
    std::fs::write(root.join("pg/d/sub/stale"), b"stale").unwrap();

    let pending = store
        .begin(&name("pg/x"), ArtifactKind::File)
        .await
        .unwrap();
    std::fs::write(pending.path(), b"fresh").unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    assert_eq!(std::fs::read(root.join("pg/x")).unwrap(), b"fresh");

    commit_dir(&store, "pg/d").await;
    assert!(!root.join("pg/d/sub/stale").exists());
    assert!(store.verify(&name("pg/d")).await.unwrap().ok);
    assert!(!has_partials(&root));
}

#[tokio::test]
async fn begin_refuses_an_existing_artifact() {
    let (_dir, store) = store();
    let pending = store.begin(&name("x"), ArtifactKind::File).await.unwrap();
    std::fs::write(pending.path(), b"1").unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();

    for kind in [ArtifactKind::File, ArtifactKind::Directory] {
        let err = store.begin(&name("x"), kind).await.unwrap_err();
        assert!(matches!(err, ArtifactError::AlreadyExists(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("`x`") && message.contains("already exists"),
            "{message}"
        );
        assert!(
            message.contains(&store.root().display().to_string()),
            "{message}"
        );
    }
    // Nor can a name go inside an artifact...
    let err = store
        .begin(&name("x/y"), ArtifactKind::File)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::AlreadyExists(_)), "{err}");
    // ...nor an artifact take the place of a folder of artifacts.
    commit_dir(&store, "ns/inner").await;
    let err = store
        .begin(&name("ns"), ArtifactKind::Directory)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::AlreadyExists(_)), "{err}");
    assert!(!has_partials(store.root()));
    assert_eq!(
        std::fs::read(store.local_path(&name("x")).unwrap()).unwrap(),
        b"1"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn links_are_never_followed() {
    let (dir, store) = store();
    let root = store.root().to_path_buf();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();

    // A link planted inside a directory artifact.
    commit_dir(&store, "d").await;
    let data = store.local_path(&name("d")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), data.join("sub/link")).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("dirlink")).unwrap();
    let report = store.verify(&name("d")).await.unwrap();
    assert!(!report.ok);
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("`sub/link` is a symbolic link (not followed)"),
        "{problems}"
    );
    assert!(
        problems.contains("`dirlink` is a symbolic link (not followed)"),
        "{problems}"
    );
    // A link in place of a file of the manifest.
    std::fs::remove_file(data.join("toc.dat")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), data.join("toc.dat")).unwrap();
    let problems = store.verify(&name("d")).await.unwrap().problems.join("\n");
    assert!(
        problems.contains("`toc.dat` is a symbolic link"),
        "{problems}"
    );
    assert!(!problems.contains("`toc.dat` is missing"), "{problems}");
    // Delete removes the links, not what they point to.
    store.delete(&name("d")).await.unwrap();
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"do not touch"
    );

    // A file artifact replaced by a link.
    let pending = store.begin(&name("f"), ArtifactKind::File).await.unwrap();
    std::fs::write(pending.path(), b"1").unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    std::fs::remove_file(root.join("f")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("f")).unwrap();
    let problems = store.verify(&name("f")).await.unwrap().problems.join("\n");
    assert!(
        problems.contains("is a symbolic link (not followed)"),
        "{problems}"
    );

    // A linked folder on the way to an artifact.
    std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
    let err = store
        .begin(&name("evil/x"), ArtifactKind::File)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(store.get(&name("evil/x")).await.is_err());
    assert!(store.delete(&name("evil/secret")).await.is_err());
    assert!(store.list("evil/").await.is_err());
    assert!(
        store
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| !m.name.starts_with("evil"))
    );
    // A manifest planted outside, reached through the link, is not listed.
    std::fs::write(outside.join("y.manifest.json"), b"{}").unwrap();
    assert_eq!(store.list("").await.unwrap().len(), 1);

    // A link made inside a write in progress: the commit refuses it.
    let pending = store
        .begin(&name("w"), ArtifactKind::Directory)
        .await
        .unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), pending.path().join("l")).unwrap();
    let err = pending.commit(BTreeMap::new()).await.unwrap_err();
    assert!(err.to_string().contains("`l` is a symbolic link"), "{err}");
    assert_eq!(store.get(&name("w")).await.unwrap(), None);

    // Sweeping removes the planted link itself (data without a manifest).
    let removed = store.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(removed, [root.join("evil")]);
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"do not touch"
    );
    assert!(outside.join("y.manifest.json").exists());
    assert!(!has_partials(&root));
}

#[tokio::test]
async fn open_gives_a_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        name: "local".into(),
        kind: StoreKind::Local {
            root: dir.path().join("artifacts"),
        },
    };
    config.validate().unwrap();
    assert_eq!(config.kind.as_str(), "local");
    let store: std::sync::Arc<dyn ArtifactStore> = open(&config);
    assert!(
        store.list("").await.unwrap().is_empty(),
        "a missing root is empty"
    );
    let pending = store.begin(&name("a"), ArtifactKind::File).await.unwrap();
    std::fs::write(pending.path(), b"1").unwrap();
    pending.commit(BTreeMap::new()).await.unwrap();
    assert_eq!(
        store.local_path(&name("a")),
        Some(dir.path().join("artifacts/a"))
    );
    assert!(store.verify(&name("a")).await.unwrap().ok);

    let bad = |name: &str, root: &str| StoreConfig {
        name: name.into(),
        kind: StoreKind::Local {
            root: PathBuf::from(root),
        },
    };
    assert!(
        bad("Bad", "/x")
            .validate()
            .unwrap_err()
            .contains("invalid store name")
    );
    assert!(
        bad("ok", "rel")
            .validate()
            .unwrap_err()
            .contains("must be absolute")
    );
    assert!(bad("ok", "/").validate().unwrap_err().contains("not `/`"));
}

#[test]
fn drop_outside_a_runtime_cleans_up_at_once() {
    let (_dir, store) = store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pending = runtime
        .block_on(store.begin(&name("x"), ArtifactKind::File))
        .unwrap();
    drop(runtime);
    let path = pending.path().to_path_buf();
    assert!(path.exists());
    drop(pending);
    assert!(!path.exists());
}

#[tokio::test]
async fn a_writers_digest_is_used_only_for_a_file_of_its_size() {
    let (_dir, store) = store();
    let pending = store
        .begin(&name("mongo/app/run1"), ArtifactKind::Directory)
        .await
        .unwrap();
    std::fs::create_dir(pending.path().join("db")).unwrap();
    std::fs::write(pending.path().join("db/a.bson"), b"aaaa").unwrap();
    std::fs::write(pending.path().join("db/b.bson"), b"bbbb").unwrap();
    let known = KnownDigests::from([
        // The writer hashed a.bson while writing it: not read again.
        ("db/a.bson".to_owned(), (4, sha256(b"aaaa"))),
        // A stale digest (the size differs): ignored, the file is hashed.
        ("db/b.bson".to_owned(), (3, sha256(b"bbb"))),
    ]);
    let manifest = pending
        .commit_with_digests(BTreeMap::new(), known)
        .await
        .unwrap();
    let by_path: BTreeMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    assert_eq!(by_path["db/a.bson"], sha256(b"aaaa"));
    assert_eq!(by_path["db/b.bson"], sha256(b"bbbb"));
    assert!(store.verify(&name("mongo/app/run1")).await.unwrap().ok);
}
