<?php
// pg_pconnect as applications write it (no BitvilleAgent helper): the connection outlives the
// request, so it keeps the tag of the request that opened it.
require __DIR__ . '/truth.php';
AccTruth::begin('pconnect', 'persistent');
$conn = pg_pconnect((string) getenv('BV_ACC_CONNINFO'));
foreach (AccTruth::durations() as $i => $s) {
    AccTruth::pg($conn, acc_step_sql($i, '$1'), array($s));
    AccTruth::gap();
}
