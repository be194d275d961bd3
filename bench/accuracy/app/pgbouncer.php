<?php
// Through pgbouncer in transaction mode: each statement may run on any of its server
// connections, so the truth names no backend; a marker per statement identifies it instead.
require __DIR__ . '/truth.php';
AccTruth::begin('pgbouncer', 'pooled');
$conn = pg_connect((string) getenv('BV_ACC_BOUNCER_CONNINFO'), PGSQL_CONNECT_FORCE_NEW);
$marker = bin2hex(random_bytes(6));
foreach (AccTruth::durations() as $i => $s) {
    $sql = str_replace('$1', (string) $s, acc_step_sql($i, '$1')) . ' /* acc ' . $marker . ' */';
    $start = AccTruth::now();
    pg_fetch_all(pg_query($conn, $sql));
    AccTruth::note(0, $sql, $start, AccTruth::now());
    AccTruth::gap();
}
pg_close($conn);
