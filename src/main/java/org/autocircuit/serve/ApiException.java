package org.autocircuit.serve;

/**
 * A request the server refuses, with the HTTP status, the request field at fault (null when the whole request is)
 * and a message saying what was expected. The server answers it as {@code {"error": {status, field, message}}}.
 */
final class ApiException extends RuntimeException {
    private final int status;
    private final String field;

    ApiException(int status, String field, String message) {
        super(message);
        this.status = status;
        this.field = field;
    }

    static ApiException badRequest(String field, String message) {
        return new ApiException(400, field, message);
    }

    static ApiException notFound(String field, String message) {
        return new ApiException(404, field, message);
    }

    int status() {
        return status;
    }

    String field() {
        return field;
    }
}
