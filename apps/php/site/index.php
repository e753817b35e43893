<?php
// The front controller of the sample PHP site (apps/php/site), served by a route with
// `php = true`: every path that names no file comes here, and routing uses REQUEST_URI,
// as Laravel, Symfony and WordPress do.
session_start();

$base = rtrim(dirname($_SERVER['SCRIPT_NAME']), '/');
$path = substr(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH), strlen($base));
$method = $_SERVER['REQUEST_METHOD'];

function json($value) {
    header('Content-Type: application/json');
    echo json_encode($value), "\n";
}

if ($path === '/' || $path === '') {
    echo "home of the sample site\n";
} elseif (preg_match('#^/articles/(\d+)/([a-z0-9-]+)$#', $path, $m)) {
    // A pretty URL: no file by this name exists.
    json(['article' => (int)$m[1], 'slug' => $m[2]]);
} elseif ($path === '/env') {
    $keys = ['SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'REQUEST_URI', 'QUERY_STRING', 'DOCUMENT_ROOT',
             'REQUEST_METHOD', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'REMOTE_ADDR', 'HTTPS', 'REQUEST_SCHEME'];
    $env = [];
    foreach ($keys as $k) { $env[$k] = $_SERVER[$k] ?? null; }
    json($env);
} elseif ($path === '/form' && $method === 'POST') {
    json(['name' => $_POST['name'] ?? null, 'colour' => $_POST['colour'] ?? null]);
} elseif ($path === '/upload' && $method === 'POST') {
    $f = $_FILES['file'] ?? null;
    if ($f === null || $f['error'] !== UPLOAD_ERR_OK) {
        http_response_code(400);
        json(['error' => $f['error'] ?? 'no file']);
    } else {
        json(['name' => $f['name'], 'size' => $f['size'], 'sha256' => hash_file('sha256', $f['tmp_name']),
              'note' => $_POST['note'] ?? null]);
    }
} elseif ($path === '/login' && $method === 'POST') {
    // Post/Redirect/Get: the session remembers the user, the browser follows a 303.
    $_SESSION['user'] = $_POST['user'] ?? 'anonymous';
    header('Location: ' . $base . '/me', true, 303);
} elseif ($path === '/me') {
    if (!isset($_SESSION['user'])) {
        http_response_code(401);
        echo "not logged in\n";
    } else {
        $_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
        json(['user' => $_SESSION['user'], 'visits' => $_SESSION['visits']]);
    }
} elseif ($path === '/old-page') {
    header('Location: ' . $base . '/articles/1/moved', true, 301);
} else {
    http_response_code(404);
    echo "no page at $path\n";
}
