// Least-privilege users for Warden's shipped plugins on MongoDB (mongosh,
// as a user administrator). `warden check --connect` compares each user's
// privileges (connectionStatus with showPrivileges) with these needs.
const admin = db.getSiblingDB("admin");

// Every `read` call (read_url_env / read_url_file): find, listCollections,
// listIndexes on the database; serverStatus, $indexStats and currentOp.
admin.createUser({
  user: "warden_read",
  pwd: passwordPrompt(),
  roles: [{ role: "read", db: "app" }, { role: "clusterMonitor", db: "admin" }],
});

// Every other call (the main URL).
admin.createUser({
  user: "warden_maint",
  pwd: passwordPrompt(),
  roles: [
    { role: "read", db: "app" },            // backup: dumps (find, listCollections, listIndexes)
    { role: "dbAdmin", db: "app" },         // vacuum, runbook `maintenance`: compact, collMod, reIndex
    { role: "readWrite", db: "app" },       // index-advisor `ddl`/`write`: createIndex, dropIndex; runbook `write`
    { role: "clusterMonitor", db: "admin" },// runbook `session-control`: currentOp (inprog)
    { role: "hostManager", db: "admin" },   // runbook `session-control`: killOp (killop)
  ],
});

// backup's verification restore (`restore_to`): the scratch database only.
admin.createUser({
  user: "warden_restore",
  pwd: passwordPrompt(),
  roles: [{ role: "readWrite", db: "app_scratch" }],
});
